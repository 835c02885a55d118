using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>A gateway whose Redis is not there when it starts: a real redis-server started late, or never.</summary>
public sealed class StoreStartupTests
{
    [Fact]
    public async Task The_proxy_takes_no_traffic_and_readiness_says_not_ready_until_a_late_redis_connects()
    {
        var redisPort = RedisServer.FreePort(cluster: false);
        await using var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var directory = Directory.CreateTempSubdirectory("floodgate-store-startup-").FullName;
        try
        {
            var policy = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(policy, PolicyFor(upstream, redisPort, "open"));
            var proxy = new Uri($"http://127.0.0.1:{UnusedPort()}");
            var admin = new Uri($"http://127.0.0.1:{UnusedPort()}");
            var starting = GatewayHost.StartAsync(new GatewayHostOptions { PolicyPath = policy, Listen = proxy, Admin = admin, WatchPolicy = false, LogLevel = LogLevel.Warning });
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            try
            {
                // The admin port is up, and says why the replica is not ready; the proxy takes no connection at all, so
                // no decision is answered by on_failure (here open: every request would be let through unlimited).
                Assert.True(await Eventually.HoldsAsync(async () => await StatusOfAsync(client, new Uri(admin, "/healthz")) == HttpStatusCode.OK, TimeSpan.FromSeconds(20)), "/healthz never answered");
                using (var readyz = await client.GetAsync(new Uri(admin, "/readyz")))
                {
                    Assert.Equal(HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
                    var body = JsonDocument.Parse(await readyz.Content.ReadAsStringAsync()).RootElement;
                    Assert.Equal("not ready", body.GetProperty("status").GetString());
                    Assert.Contains("connecting", body.GetProperty("store_status").GetString(), StringComparison.Ordinal);
                }

                Assert.False(starting.IsCompleted);
                await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync(new Uri(proxy, "/a")));

                using var redis = RedisServer.Start(redisPort);
                await starting.WaitAsync(TimeSpan.FromSeconds(60));

                // Decided in Redis from the first request on: the limit holds.
                Assert.Equal(HttpStatusCode.OK, await StatusOfAsync(client, new Uri(proxy, "/a")));
                Assert.Equal(HttpStatusCode.TooManyRequests, await StatusOfAsync(client, new Uri(proxy, "/a")));
                Assert.NotEqual("0", redis.Cli("DBSIZE").Trim());
                using var ready = await client.GetAsync(new Uri(admin, "/readyz"));
                Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            }
            finally
            {
                // A start still waiting finishes at its deadline: then nothing it opened outlives the test.
                await (await starting.WaitAsync(TimeSpan.FromSeconds(120))).DisposeAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_redis_that_never_comes_is_logged_as_critical_at_the_deadline_and_on_failure_is_followed()
    {
        var redisPort = RedisServer.FreePort(cluster: false);
        await using var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var directory = Directory.CreateTempSubdirectory("floodgate-store-startup-").FullName;
        try
        {
            var policy = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(policy, PolicyFor(upstream, redisPort, "closed"));
            using var logs = new FakeLoggerProvider();
            var started = System.Diagnostics.Stopwatch.StartNew();
            await using var host = await GatewayHost.StartAsync(new GatewayHostOptions
            {
                PolicyPath = policy,
                Listen = new Uri("http://127.0.0.1:0"),
                Admin = new Uri("http://127.0.0.1:0"),
                WatchPolicy = false,
                LogLevel = LogLevel.Warning,
                LoggerProvider = logs,
                StoreStartupTimeout = TimeSpan.FromSeconds(1),
            });

            // The start waited for the deadline, then said so loudly, naming what follows.
            Assert.True(started.Elapsed >= TimeSpan.FromSeconds(1), $"The start took {started.Elapsed}, less than its deadline.");
            var critical = Assert.Single(logs.Collector.AtLeast(LogLevel.Critical));
            Assert.Equal("The redis store did not connect within 1 s of the start (store startup timeout): taking traffic now, and until it connects decisions follow on_failure closed: every limited request is refused with 503", critical.Message);

            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            using (var refused = await client.GetAsync(new Uri(host.ProxyAddress, "/a")))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            }

            using var readyz = await client.GetAsync(new Uri(host.AdminAddress!, "/readyz"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, readyz.StatusCode);
            var body = JsonDocument.Parse(await readyz.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("unreachable; on_failure closed in force", body.GetProperty("store_status").GetString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string PolicyFor(EchoUpstream upstream, int redisPort, string onFailure) => $$"""
        upstream: {{upstream.Address.ToString().TrimEnd('/')}}
        store: { kind: redis, configuration: "127.0.0.1:{{redisPort.ToString(CultureInfo.InvariantCulture)}},connectTimeout=500", on_failure: {{onFailure}}, timeout: 2s }
        edge:
          - name: ip
            limit: 1/min
        """;

    private static async Task<HttpStatusCode?> StatusOfAsync(HttpClient client, Uri uri)
    {
        try
        {
            using var response = await client.GetAsync(uri);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    /// <summary>A loopback port nothing listens on: bound and released.</summary>
    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
