using System.Net;
using Floodgate.Client.Pacing;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Client.Tests.Gateway;

/// <summary>
/// A real Floodgate gateway on a free loopback port, on the system clock, in front of a real echo upstream, trusting a
/// real identity provider whose token the callers share; and a paced client for it, made by <c>IHttpClientFactory</c>.
/// The gateway can be restarted on the same port (its counts lost) and its policy reloaded.
/// </summary>
internal sealed class LoopbackGateway : IAsyncDisposable
{
    public const string ClientName = "gateway";

    private readonly string _directory;
    private readonly EchoUpstream _upstream;
    private readonly ServiceProvider _services;

    private LoopbackGateway(string directory, EchoUpstream upstream, TestIdentityProvider identity, GatewayHost host)
    {
        _directory = directory;
        _upstream = upstream;
        Identity = identity;
        Host = host;
        Token = identity.CreateToken(subject: "agent-7");
        var services = new ServiceCollection();
        services.AddHttpClient(ClientName, c =>
        {
            c.BaseAddress = host.ProxyAddress;
            c.Timeout = TimeSpan.FromSeconds(60);
            c.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"Bearer {Token}");
        }).AddFloodgatePacing(o => o.Deadline = TimeSpan.FromSeconds(30));
        _services = services.BuildServiceProvider();
    }

    public GatewayHost Host { get; private set; }

    public TestIdentityProvider Identity { get; }

    public string Token { get; }

    public string PolicyPath => Path.Combine(_directory, "policy.yaml");

    /// <summary>The paced client (the factory's: the pacing handler shares its pacers across the clients it makes).</summary>
    public HttpClient Paced() => _services.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);

    /// <summary>A client without the handler, with the same token.</summary>
    public HttpClient Unpaced()
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = Host.ProxyAddress, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"Bearer {Token}");
        return client;
    }

    /// <summary>
    /// One request with another subject's token, so that the gateway has fetched the identity provider's keys and warmed
    /// its path before a test counts: the limit under test is measured, not the gateway's first request.
    /// </summary>
    public async Task WarmUpAsync()
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = Host.ProxyAddress };
        client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"Bearer {Identity.CreateToken(subject: "warm-up")}");
        using var response = await client.GetAsync("/warm-up");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>What the paced client's pacer for the gateway believes now.</summary>
    public PacerState Pacer() =>
        _services.GetRequiredService<PacerRegistry>().ClientFor(ClientName).RouteFor(Host.ProxyAddress, $"Bearer {Token}").Current.Snapshot();

    /// <summary>Starts a gateway on <paramref name="policy"/>, a user tier keyed on the token's subject.</summary>
    public static async Task<LoopbackGateway> StartAsync(string userRules)
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-client-test-").FullName;
        var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var identity = await TestIdentityProvider.StartAsync();
        try
        {
            var path = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(path, Policy(userRules, upstream, identity));
            var host = await StartHostAsync(path, new Uri("http://127.0.0.1:0"));
            return new LoopbackGateway(directory, upstream, identity, host);
        }
        catch
        {
            await upstream.DisposeAsync();
            await identity.DisposeAsync();
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    /// <summary>Stops the gateway and starts a new one on the same port and policy: every count is lost.</summary>
    public async Task RestartAsync()
    {
        var address = Host.ProxyAddress;
        await Host.DisposeAsync();
        Host = await StartHostAsync(PolicyPath, new Uri($"http://127.0.0.1:{address.Port}"));
    }

    /// <summary>Writes new user rules and reloads them; fails on a policy error.</summary>
    public async Task ReloadAsync(string userRules)
    {
        await File.WriteAllTextAsync(PolicyPath, Policy(userRules, _upstream, Identity));
        Assert.Empty(Host.Reload());
    }

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        await Host.DisposeAsync();
        await _upstream.DisposeAsync();
        await Identity.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string Policy(string userRules, EchoUpstream upstream, TestIdentityProvider identity) => $$"""
        upstream: {{upstream.Address.ToString().TrimEnd('/')}}
        identity:
          jwt:
            authority: {{identity.Authority}}
            require_https: false
            audiences: [{{TestIdentityProvider.DefaultAudience}}]
          anonymous: reject
        user:
        {{userRules}}
        """;

    private static Task<GatewayHost> StartHostAsync(string path, Uri listen) => GatewayHost.StartAsync(new GatewayHostOptions
    {
        PolicyPath = path,
        Listen = listen,
        Admin = null,
        WatchPolicy = false,
        LogLevel = LogLevel.Warning,
        StoreStartupTimeout = TimeSpan.FromSeconds(2),
    });
}
