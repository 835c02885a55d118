using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;

namespace Floodgate.Client.Tests.Gateway;

/// <summary>The pacing handler against a real gateway on loopback: one token at 10/s, shared by 50 concurrent callers.</summary>
public sealed class GatewayPacingTests(ITestOutputHelper output)
{
    private const int Callers = 50;
    private const double Rate = 10;
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(10);

    private const string TenPerSecond = """
          - name: per-token
            limit: 10/s
        """;

    [Fact]
    public async Task Fifty_paced_callers_over_one_token_get_no_429_and_use_most_of_the_allowed_throughput()
    {
        await using var gateway = await LoopbackGateway.StartAsync(TenPerSecond);
        await gateway.WarmUpAsync();
        var (ok, rejected, other) = await RunAsync(gateway.Paced, Duration, maxPerCaller: 100, output);

        // Allowed: 10/s for 10 s. (The bucket also lets 10 go at once at the start; pacing spends at the rate instead.)
        var allowed = Rate * Duration.TotalSeconds;
        output.WriteLine($"paced: {ok} admitted, {rejected} rejected, {other} other in {Duration.TotalSeconds} s; allowed {allowed}: {ok / allowed:P1}");
        Assert.Equal(0, rejected);
        Assert.Equal(0, other);
        // How close to the limit the pacer runs is a figure for docs/benchmarks.md (92 to 101 % measured, 86 % while the
        // suite loads the machine), not a timed assertion; the floor only catches a pacer that wastes most of the budget.
        Assert.True(ok >= 0.70 * allowed, $"{ok} admitted of {allowed} allowed");
    }

    [Fact]
    public async Task The_same_callers_without_the_handler_get_many_429s()
    {
        await using var gateway = await LoopbackGateway.StartAsync(TenPerSecond);
        await gateway.WarmUpAsync();

        // Shorter: the point is the count of refusals, which unpaced callers pile up at once.
        var window = TimeSpan.FromSeconds(3);
        var (ok, rejected, other) = await RunAsync(gateway.Unpaced, window, maxPerCaller: 200);
        output.WriteLine($"unpaced: {ok} admitted, {rejected} rejected, {other} other in {window.TotalSeconds} s");
        Assert.Equal(0, other);
        Assert.InRange(ok, 1, (Rate * window.TotalSeconds) + Rate + 1);
        Assert.True(rejected >= 10 * ok, $"{rejected} rejected against {ok} admitted");
    }

    [Fact]
    public async Task A_restart_that_loses_the_counts_and_a_raised_limit_are_each_followed_within_one_answer()
    {
        await using var gateway = await LoopbackGateway.StartAsync("""
              - name: per-token
                limit: 100/min
            """);
        var paced = gateway.Paced();

        // Another client spends 97 of the 100: the paced client's answer leaves it 2.
        using (var unpaced = gateway.Unpaced())
        {
            for (var i = 0; i < 97; i++)
            {
                using var spent = await unpaced.GetAsync("/spend");
                Assert.Equal(HttpStatusCode.OK, spent.StatusCode);
            }
        }

        using (var response = await paced.GetAsync("/before"))
        {
            Assert.Equal("\"per-token\";r=2;t=59", response.Headers.GetValues("RateLimit").Single());
        }

        Assert.Equal(2, gateway.Pacer().Remaining);

        // The gateway restarts with no counts: the next answer says 99 remain, and the pacer believes it.
        await gateway.RestartAsync();
        using (var response = await paced.GetAsync("/after-restart"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("\"per-token\";r=99;t=1", response.Headers.GetValues("RateLimit").Single());
        }

        var afterRestart = gateway.Pacer();
        Assert.Equal((99.0, 100L), (afterRestart.Remaining, afterRestart.Quota));
        Assert.True(afterRestart.ResetIn <= TimeSpan.FromSeconds(1));

        // The plan is raised to 600/min: the next answer names it, and the pacer spaces requests by it.
        await gateway.ReloadAsync("""
              - name: per-token
                limit: 600/min
            """);
        using (var response = await paced.GetAsync("/after-reload"))
        {
            Assert.Equal("\"per-token\";q=600;w=60", response.Headers.GetValues("RateLimit-Policy").Single());
        }

        var afterReload = gateway.Pacer();
        Assert.Equal((600L, TimeSpan.FromSeconds(60)), (afterReload.Quota, afterReload.Window));
        Assert.True(afterReload.NextIn <= TimeSpan.FromSeconds(0.1), $"next slot in {afterReload.NextIn}");
    }

    /// <summary>
    /// Runs <see cref="Callers"/> callers, each sending one request after another until <paramref name="window"/> has
    /// passed (or it has sent <paramref name="maxPerCaller"/>); counts the answers that came within the window.
    /// </summary>
    private static async Task<(int Ok, int Rejected, int Other)> RunAsync(Func<HttpClient> client, TimeSpan window, int maxPerCaller, ITestOutputHelper? output = null)
    {
        int ok = 0, rejected = 0, other = 0;
        var perSecond = new int[(int)window.TotalSeconds + 1];
        var latencies = new System.Collections.Concurrent.ConcurrentBag<double>();
        using var stop = new CancellationTokenSource(window);
        var clock = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, Callers).Select(async caller =>
        {
            var http = client();
            for (var i = 0; i < maxPerCaller && clock.Elapsed < window; i++)
            {
                try
                {
                    var sent = clock.Elapsed;
                    using var response = await http.GetAsync($"/items/{caller}", stop.Token);
                    var answered = clock.Elapsed;
                    if (clock.Elapsed > window)
                    {
                        break;
                    }

                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref ok);
                        Interlocked.Increment(ref perSecond[(int)answered.TotalSeconds]);
                        latencies.Add((answered - sent).TotalMilliseconds);
                    }
                    else if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        Interlocked.Increment(ref rejected);
                    }
                    else
                    {
                        Interlocked.Increment(ref other);
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
            }
        }).ToArray();
        await Task.WhenAll(callers);

        // Where a shortfall came from: answers per second of the run, and how long a call took (its wait for a turn included).
        output?.WriteLine($"answered per second: {string.Join(' ', perSecond)}");
        if (output is not null && !latencies.IsEmpty)
        {
            var sorted = latencies.Order().ToArray();
            output.WriteLine($"call time ms: p50 {sorted[sorted.Length / 2]:0} p90 {sorted[sorted.Length * 9 / 10]:0} max {sorted[^1]:0}");
        }

        return (ok, rejected, other);
    }
}
