using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// SIGTERM to a real gateway process under load, on a real redis-server: the replica leaves rotation (/readyz 503)
/// while it still answers, then stops taking connections, lets the requests in flight finish, releases every
/// concurrency permit (the leases outlive the test, so a leaked one would stay in Redis), and exits 0. Bounded: the
/// upstream holds requests until the test lets them go, and every wait has a deadline.
/// </summary>
public sealed class GracefulShutdownTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    // The leases of every concurrency key (sorted sets: a lease's score is its expiry, the permit sum's is not above 0).
    private const string CountLeases = "local n = 0 for _, k in ipairs(redis.call('KEYS', '*')) do if redis.call('TYPE', k).ok == 'zset' then n = n + redis.call('ZCOUNT', k, '(0', '+inf') end end return n";

    [Fact]
    public async Task Sigterm_drains_requests_in_flight_releases_their_permits_and_exits_zero()
    {
        using var redis = RedisServer.Start();
        await using var upstream = await HoldingUpstream.StartAsync();
        using var gateway = GatewayProcess.Start(Policy(redis, upstream), "--no-watch", "--shutdown-timeout", "20s", "--shutdown-delay", "2s");
        using var client = new HttpClient { BaseAddress = gateway.Proxy, Timeout = Bound };
        await gateway.WaitReadyAsync();

        // Twenty requests held at the upstream, each holding a permit in Redis.
        const int held = 20;
        var slow = Enumerable.Range(0, held).Select(i => client.GetAsync(new Uri($"/slow/{i}", UriKind.Relative))).ToArray();
        await Until(() => upstream.Held == held, "the slow requests reach the upstream");
        Assert.Equal(held.ToString(CultureInfo.InvariantCulture), redis.Cli("EVAL", CountLeases, "0"));

        // Load alongside, on fresh connections each time, until the port is closed.
        using var stop = new CancellationTokenSource(Bound);
        var terminated = false;
        var workers = Enumerable.Range(0, 2).Select(_ => LoadAsync(gateway.Proxy, () => Volatile.Read(ref terminated), stop.Token)).ToArray();
        await Until(() => workers.All(w => w.IsCompleted) || upstream.Quick > 20, "the load runs");

        Volatile.Write(ref terminated, true);
        gateway.Terminate();

        // Out of rotation first, still answering: /readyz is 503 while the load is still admitted.
        using (var admin = new HttpClient { BaseAddress = gateway.Admin, Timeout = Bound })
        {
            await Until(async () => (await admin.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode == HttpStatusCode.ServiceUnavailable, "/readyz says not ready");
            using var readyz = await admin.GetAsync(new Uri("/readyz", UriKind.Relative));
            Assert.Contains("shutting down", await readyz.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var quickAtNotReady = upstream.Quick;
        await Until(() => workers.All(w => w.IsCompleted), "the port closes");
        Assert.True(upstream.Quick > quickAtNotReady, "requests were still admitted during the shutdown delay");

        // The port is closed and the held requests are still in flight: let them finish now.
        Assert.False(gateway.HasExited);
        upstream.Release();
        foreach (var response in await Task.WhenAll(slow))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            response.Dispose();
        }

        // No request failed before the shutdown, and every request the gateway forwarded was answered 200: the only
        // requests not served are those it never took (a connection refused, or reset in the closed port's backlog).
        var admitted = 0;
        foreach (var worker in workers)
        {
            var (ok, failures) = await worker;
            Assert.True(ok > 0);
            Assert.Empty(failures);
            admitted += ok;
        }

        Assert.Equal(upstream.Quick, admitted);

        var exit = await gateway.WaitExitAsync();
        Assert.True(exit == 0, $"exit code {exit}: {gateway.Output}");
        Assert.Equal("0", redis.Cli("EVAL", CountLeases, "0"));
        Assert.Contains("Floodgate shutting down", gateway.Output, StringComparison.Ordinal);
        Assert.Contains("Floodgate stopped taking traffic", gateway.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_past_the_shutdown_timeout_is_aborted_and_its_permit_released()
    {
        using var redis = RedisServer.Start();
        await using var upstream = await HoldingUpstream.StartAsync();
        using var gateway = GatewayProcess.Start(Policy(redis, upstream), "--no-watch", "--shutdown-timeout", "1s");
        using var client = new HttpClient { BaseAddress = gateway.Proxy, Timeout = Bound };
        await gateway.WaitReadyAsync();

        // Held for ever (until the upstream is disposed): only the deadline ends it.
        var hung = client.GetAsync(new Uri("/slow/hung", UriKind.Relative));
        await Until(() => upstream.Held == 1, "the request reaches the upstream");
        Assert.Equal("1", redis.Cli("EVAL", CountLeases, "0"));

        var stopping = Stopwatch.StartNew();
        gateway.Terminate();
        Assert.Equal(0, await gateway.WaitExitAsync());
        Assert.InRange(stopping.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => hung);
        Assert.Equal("0", redis.Cli("EVAL", CountLeases, "0"));
    }

    private static string Policy(RedisServer redis, HoldingUpstream upstream) => $$"""
        upstream: {{upstream.Address}}
        store: { kind: redis, configuration: "{{redis.Configuration}}", on_failure: closed, timeout: 2s }
        service:
          - name: in-flight
            concurrency: 1000
            lease_timeout: 10m
        """;

    /// <summary>
    /// Requests on a new connection each, until the port refuses one once the gateway is told to stop: the 200s, and
    /// anything else that happened (a connection that fails before then is a failure).
    /// </summary>
    private static async Task<(int Ok, List<string> Failures)> LoadAsync(Uri proxy, Func<bool> stopping, CancellationToken cancellationToken)
    {
        var ok = 0;
        var failures = new List<string>();
        while (!cancellationToken.IsCancellationRequested)
        {
            using var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero };
            using var client = new HttpClient(handler) { BaseAddress = proxy, Timeout = Bound };
            try
            {
                using var response = await client.GetAsync(new Uri("/quick", UriKind.Relative), cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    ok++;
                }
                else
                {
                    failures.Add($"status {(int)response.StatusCode}");
                }
            }
            catch (HttpRequestException) when (stopping())
            {
                // The port is closed (refused, or reset in its backlog): the gateway stopped taking connections, as it
                // should; whether it had forwarded the request is checked against the upstream's count.
                return (ok, failures);
            }
            catch (HttpRequestException e)
            {
                failures.Add(e.Message);
            }
        }

        failures.Add("the port never closed");
        return (ok, failures);
    }

    private static Task Until(Func<bool> condition, string what) => Until(() => Task.FromResult(condition()), what);

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(deadline.Elapsed < Bound, $"timed out waiting until {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>An upstream that holds <c>/slow/…</c> until <see cref="Release"/> and answers anything else at once.</summary>
    private sealed class HoldingUpstream : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _held;
        private int _quick;

        private HoldingUpstream(WebApplication app) => _app = app;

        public Uri Address => new(_app.Urls.First());

        public int Held => Volatile.Read(ref _held);

        public int Quick => Volatile.Read(ref _quick);

        public static async Task<HoldingUpstream> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var upstream = new HoldingUpstream(app);
            app.MapGet("/slow/{id}", async (HttpContext context) =>
            {
                Interlocked.Increment(ref upstream._held);
                await upstream._release.Task.WaitAsync(context.RequestAborted);
                return "done";
            });
            app.MapGet("/quick", () =>
            {
                Interlocked.Increment(ref upstream._quick);
                return "ok";
            });
            await app.StartAsync();
            return upstream;
        }

        public void Release() => _release.TrySetResult();

        public async ValueTask DisposeAsync()
        {
            _release.TrySetCanceled();
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }
    }
}
