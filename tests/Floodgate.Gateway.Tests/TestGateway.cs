using System.Net;
using System.Text.Json;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// A gateway on loopback for one test: a real echo upstream, a real identity provider (JWKS with RSA and EC keys), the
/// policy written to a temporary file, and a fake clock for the engine, the store and token lifetimes.
/// </summary>
internal sealed class TestGateway : IAsyncDisposable
{
    private readonly string _directory;

    private TestGateway(string directory, string policyPath, EchoUpstream upstream, TestIdentityProvider identity, GatewayHost host, FakeTimeProvider time)
    {
        _directory = directory;
        PolicyPath = policyPath;
        Upstream = upstream;
        Identity = identity;
        Host = host;
        Time = time;
        Client = new HttpClient { BaseAddress = host.ProxyAddress, Timeout = TimeSpan.FromSeconds(30) };
        Admin = new HttpClient { BaseAddress = host.AdminAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public EchoUpstream Upstream { get; }

    public TestIdentityProvider Identity { get; }

    public GatewayHost Host { get; }

    public FakeTimeProvider Time { get; }

    public HttpClient Client { get; }

    public HttpClient Admin { get; }

    public string PolicyPath { get; }

    /// <summary>
    /// Starts a gateway. In <paramref name="policy"/>, <c>{upstream}</c> is the echo upstream's address and
    /// <c>{identity}</c> an <c>identity:</c> section trusting the test identity provider.
    /// </summary>
    /// <param name="policy">The policy, expanded as above.</param>
    /// <param name="watch">Whether the policy file is watched.</param>
    /// <param name="certificate">A PEM certificate file: the proxy then listens on https (its <see cref="Client"/> is unusable).</param>
    /// <param name="certificateKey">The PEM key file of <paramref name="certificate"/>, when separate.</param>
    /// <param name="policyPath">
    /// Where the policy is written and read from, in a directory the caller made (and removes); a file of a temporary
    /// directory of the gateway's own by default.
    /// </param>
    /// <param name="logs">Where the gateway's log lines go too; they are still filtered by its log level.</param>
    /// <param name="storeStartupTimeout">How long the start waits for a Redis store to connect; 2 s by default, so that a
    /// test of a Redis that is never there does not wait the gateway's 30 s.</param>
    /// <param name="logLevel">The gateway's log level; Warning by default.</param>
    /// <param name="httpsAdmin">Whether <paramref name="certificate"/> is served on the admin port (https) rather than the proxy's (then http).</param>
    public static async Task<TestGateway> StartAsync(string policy, bool watch = false, string? certificate = null, string? certificateKey = null, string? policyPath = null, ILoggerProvider? logs = null, TimeSpan? storeStartupTimeout = null, LogLevel logLevel = LogLevel.Warning, bool httpsAdmin = false)
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-gateway-test-").FullName;
        policyPath ??= Path.Combine(directory, "policy.yaml");
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var identity = await TestIdentityProvider.StartAsync();
        try
        {
            await File.WriteAllTextAsync(policyPath, Expand(policy, upstream, identity));
            var host = await GatewayHost.StartAsync(new GatewayHostOptions
            {
                PolicyPath = policyPath,
                Listen = new Uri(certificate is null || httpsAdmin ? "http://127.0.0.1:0" : "https://127.0.0.1:0"),
                Certificate = certificate,
                CertificateKey = certificateKey,
                Admin = new Uri(httpsAdmin ? "https://127.0.0.1:0" : "http://127.0.0.1:0"),
                TimeProvider = time,
                WatchPolicy = watch,
                LogLevel = logLevel,
                LoggerProvider = logs,
                StoreStartupTimeout = storeStartupTimeout ?? TimeSpan.FromSeconds(2),
            });
            return new TestGateway(directory, policyPath, upstream, identity, host, time);
        }
        catch
        {
            await upstream.DisposeAsync();
            await identity.DisposeAsync();
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    public static string Expand(string policy, EchoUpstream upstream, TestIdentityProvider identity) => policy
        .Replace("{upstream}", upstream.Address.ToString().TrimEnd('/'), StringComparison.Ordinal)
        .Replace("{identity}", $$"""
            identity:
              jwt:
                authority: {{identity.Authority}}
                require_https: false
                audiences: [{{TestIdentityProvider.DefaultAudience}}]
            """, StringComparison.Ordinal);

    public Task WritePolicyAsync(string policy) => File.WriteAllTextAsync(PolicyPath, Expand(policy, Upstream, Identity));

    /// <summary>Writes a policy whose identity trusts the one key in <paramref name="keyFile"/> and rejects anonymous requests.</summary>
    public Task WriteStaticKeyPolicyAsync(string keyFile) => WritePolicyAsync($$"""
        upstream: {upstream}
        identity:
          jwt:
            keys: [{{keyFile}}]
            issuer: {{Identity.Issuer}}
            audiences: [{{TestIdentityProvider.DefaultAudience}}]
          anonymous: reject
        """);

    public Task<HttpResponseMessage> GetAsync(string path, string? token = null, string? forwardedFor = null, string? forwarded = null) =>
        SendAsync(HttpMethod.Get, path, token, forwardedFor, forwarded);

    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? token = null, string? forwardedFor = null, string? forwarded = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        if (forwardedFor is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-For", forwardedFor);
        }

        if (forwarded is not null)
        {
            request.Headers.TryAddWithoutValidation("Forwarded", forwarded);
        }

        return await Client.SendAsync(request);
    }

    public async Task<int[]> StatusesAsync(int count, string path, string? token = null, string? forwardedFor = null)
    {
        var statuses = new int[count];
        for (var i = 0; i < count; i++)
        {
            using var response = await GetAsync(path, token, forwardedFor);
            statuses[i] = (int)response.StatusCode;
        }

        return statuses;
    }

    public async Task<JsonElement> ReadinessAsync()
    {
        using var response = await Admin.GetAsync("/readyz");
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Admin.Dispose();
        await Host.DisposeAsync();
        await Upstream.DisposeAsync();
        await Identity.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class ResponseExtensions
{
    public static string? Header(this HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values)
        : response.Content.Headers.TryGetValues(name, out values) ? string.Join(",", values)
        : null;
}

internal static class Statuses
{
    public static void Expect(int[] expected, int[] actual) => Assert.Equal(expected, actual);
}

/// <summary>Polls what a real file watcher or server does by itself, within a bound.</summary>
internal static class Eventually
{
    public static async Task<bool> HoldsAsync(Func<Task<bool>> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(50);
        }

        return await condition();
    }
}
