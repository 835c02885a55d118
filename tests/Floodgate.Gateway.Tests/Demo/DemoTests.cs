using System.Globalization;
using System.Net;
using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests;

public sealed class DemoTests
{
    [Fact]
    public async Task The_quickstart_demo_starts_an_upstream_publishes_its_key_and_prints_working_tokens()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-demo-").FullName;
        var upstream = RedisServer.FreePort(cluster: false).ToString(CultureInfo.InvariantCulture);
        var admin = RedisServer.FreePort(cluster: false).ToString(CultureInfo.InvariantCulture);
        var listen = RedisServer.FreePort(cluster: false).ToString(CultureInfo.InvariantCulture);

        // The quickstart as shipped, moved to free ports.
        var policy = Path.Combine(directory, "quickstart.yaml");
        await File.WriteAllTextAsync(policy, (await File.ReadAllTextAsync(Path.Combine(PolicyTests.RepositoryRoot(), "samples", "quickstart.yaml")))
            .Replace("127.0.0.1:5080", $"127.0.0.1:{upstream}", StringComparison.Ordinal)
            .Replace("127.0.0.1:9090", $"127.0.0.1:{admin}", StringComparison.Ordinal));
        Environment.SetEnvironmentVariable("FLOODGATE_DEMO_KEY", Path.Combine(directory, "demo-key.pem"));
        var output = new StringWriter();
        var errors = new StringWriter();
        var syncOutput = TextWriter.Synchronized(output);
        var syncErrors = TextWriter.Synchronized(errors);
        using var cancel = new CancellationTokenSource();
        var run = GatewayCli.Build(syncOutput, syncErrors)
            .Parse(["run", "--policy", policy, "--listen", $"http://127.0.0.1:{listen}", "--admin", $"http://127.0.0.1:{admin}", "--demo", "--no-watch", "--log-level", "Warning"])
            .InvokeAsync(null, cancel.Token);
        try
        {
            // Bounded polling for the banner; not a sleep for correctness.
            for (var i = 0; i < 300 && !run.IsCompleted && !Snapshot(syncOutput, output).Contains("Press Ctrl+C", StringComparison.Ordinal); i++)
            {
                await Task.Delay(50);
            }

            Assert.False(run.IsCompleted, $"The demo stopped: {Snapshot(syncErrors, errors)}");
            var banner = Snapshot(syncOutput, output);
            var alice = banner.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith("ALICE=", StringComparison.Ordinal))[6..];
            var bob = banner.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith("BOB=", StringComparison.Ordinal))[4..];
            Assert.Contains($"curl -i -H \"Authorization: Bearer $ALICE\" http://127.0.0.1:{listen}/orders/1", banner, StringComparison.Ordinal);

            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{listen}") };
            var statuses = new List<HttpStatusCode>();
            for (var i = 1; i <= 6; i++)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"/orders/{i}");
                request.Headers.Authorization = new("Bearer", alice);
                using var response = await client.SendAsync(request);
                statuses.Add(response.StatusCode);
                if (i == 1)
                {
                    Assert.Equal("\"per-user\";q=5;w=60", response.Header("RateLimit-Policy"));
                    Assert.Contains("\"upstream\":\"echo\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                }
            }

            Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 5), HttpStatusCode.TooManyRequests], statuses);
            using var bobRequest = new HttpRequestMessage(HttpMethod.Get, "/orders/1");
            bobRequest.Headers.Authorization = new("Bearer", bob);
            Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(bobRequest)).StatusCode);
        }
        finally
        {
            await cancel.CancelAsync();
            Assert.Equal(0, await run);
            Environment.SetEnvironmentVariable("FLOODGATE_DEMO_KEY", null);
            Directory.Delete(directory, recursive: true);
        }
    }

    // A synchronized writer locks itself around every write.
    private static string Snapshot(TextWriter synchronized, StringWriter inner)
    {
        lock (synchronized)
        {
            return inner.ToString();
        }
    }
}
