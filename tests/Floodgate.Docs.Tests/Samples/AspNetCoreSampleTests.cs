using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Floodgate.Docs.Tests.Snippets;
using Floodgate.Testing;

namespace Floodgate.Docs.Tests.Samples;

/// <summary>
/// README's in-app example is samples/Floodgate.AspNetCore.Sample (word for word, <see cref="SnippetTests"/>): started
/// as its own process on a free loopback port, with a real identity provider, and called.
/// </summary>
public sealed partial class AspNetCoreSampleTests : IAsyncLifetime
{
    private TestIdentityProvider _idp = null!;
    private Process _sample = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _idp = await TestIdentityProvider.StartAsync();
        var output = AppContext.BaseDirectory.Replace(Path.Combine("tests", "Floodgate.Docs.Tests"), Path.Combine("samples", "Floodgate.AspNetCore.Sample"), StringComparison.Ordinal);
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = output,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { Path.Combine(output, "Floodgate.AspNetCore.Sample.dll"), "--urls", "http://127.0.0.1:0", "--Jwt:Authority", _idp.Authority, "--Jwt:RequireHttpsMetadata", "false" })
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        _sample = Process.Start(start)!;
        _client = new HttpClient { BaseAddress = new Uri(await ListeningAddressAsync(_sample)) };
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_sample is { HasExited: false })
        {
            _sample.Kill(entireProcessTree: true);
            await _sample.WaitForExitAsync();
        }

        _sample?.Dispose();
        await _idp.DisposeAsync();
    }

    [Fact]
    public async Task The_sample_limits_each_user_by_its_named_policy_and_knows_who_is_calling()
    {
        Assert.Equal("ok", await _client.GetStringAsync("/healthz"));
        using (var anonymous = await _client.GetAsync("/orders/1"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var alice = _idp.CreateToken(subject: "alice");
        for (var i = 0; i < 5; i++)
        {
            using var response = await SendAsync(HttpMethod.Get, "/orders/7", alice);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("alice", body.RootElement.GetProperty("user").GetString());
            Assert.Equal(4 - i, body.RootElement.GetProperty("remaining").GetInt64());
            Assert.Equal((4 - i).ToString(System.Globalization.CultureInfo.InvariantCulture), response.Headers.GetValues("X-RateLimit-Remaining").Single());
        }

        using (var rejected = await SendAsync(HttpMethod.Post, "/orders", alice))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
            Assert.Equal("12", rejected.Headers.GetValues("Retry-After").Single());
            Assert.Equal("Slow down: 'orders' admits you again in 12 s.", await rejected.Content.ReadAsStringAsync());
        }

        using (var bob = await SendAsync(HttpMethod.Post, "/orders", _idp.CreateToken(subject: "bob")))
        {
            Assert.Equal(HttpStatusCode.Created, bob.StatusCode);
        }

        // The health check is exempt, however often it is called.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal("ok", await _client.GetStringAsync("/healthz"));
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string token)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await _client.SendAsync(request);
    }

    /// <summary>The address Kestrel reports it listens on, read from the sample's console within 60 s.</summary>
    private static async Task<string> ListeningAddressAsync(Process sample)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var seen = new List<string>();
        while (await sample.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            seen.Add(line);
            if (Listening().Match(line) is { Success: true } match)
            {
                // The rest of the output is drained so the sample never blocks on a full pipe.
                _ = sample.StandardOutput.ReadToEndAsync(CancellationToken.None);
                _ = sample.StandardError.ReadToEndAsync(CancellationToken.None);
                return match.Groups[1].Value;
            }
        }

        throw new InvalidOperationException($"The sample exited without listening (exit code {(sample.HasExited ? sample.ExitCode : -1)}): {string.Join(Environment.NewLine, seen)}{Environment.NewLine}{await sample.StandardError.ReadToEndAsync(CancellationToken.None)}");
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex Listening();
}
