using System.Collections.Concurrent;
using System.Diagnostics;
using Floodgate.AspNetCore.Tests.Apps;
using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Floodgate.AspNetCore.Tests.Shaping;

/// <summary>
/// A leaky bucket queue in front of an endpoint, on real Kestrel: a burst of 100 requests against 10/s with a
/// max_delay of 5 s lets 50 through, spaced 100 ms apart as the endpoint sees them arrive, and rejects 50; the same
/// across two instances on one redis-server, whose store hands out each slot once.
/// </summary>
public sealed class LeakyQueueTests(ITestOutputHelper output) : IDisposable
{
    private readonly RedisServer _redis = RedisServer.Start();

    public void Dispose() => _redis.Dispose();

    [Fact]
    public async Task A_burst_of_100_against_10_per_second_with_5_s_of_queue_passes_50_spaced_by_100_ms()
    {
        var arrivals = new ConcurrentQueue<long>();
        await using var host = await StartAsync(arrivals, redis: false);
        var started = Stopwatch.GetTimestamp();
        var statuses = await BurstAsync([host], 100);
        AssertShaped(statuses, arrivals, started);
    }

    [Fact]
    public async Task Two_instances_on_one_redis_server_share_the_queue_slot_by_slot()
    {
        var arrivals = new ConcurrentQueue<long>();
        await using var first = await StartAsync(arrivals, redis: true);
        await using var second = await StartAsync(arrivals, redis: true);
        using var connected = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await first.App.Services.GetRequiredService<RedisStore>().WaitConnectedAsync(connected.Token);
        await second.App.Services.GetRequiredService<RedisStore>().WaitConnectedAsync(connected.Token);
        var started = Stopwatch.GetTimestamp();
        var statuses = await BurstAsync([first, second], 100);
        AssertShaped(statuses, arrivals, started);
    }

    private void AssertShaped(int[] statuses, ConcurrentQueue<long> arrivals, long started)
    {
        var times = arrivals.Order().Select(t => Stopwatch.GetElapsedTime(arrivals.Min(), t).TotalMilliseconds).ToArray();
        var gaps = times.Zip(times.Skip(1), (a, b) => b - a).Order().ToArray();
        output.WriteLine($"statuses: {string.Join(", ", statuses.GroupBy(s => s).Select(g => $"{g.Key} x{g.Count()}"))}; span {times[^1]:0} ms; gaps {gaps[0]:0.0} to {gaps[^1]:0.0} ms, median {gaps[gaps.Length / 2]:0.0} ms");
        Assert.Equal(50, statuses.Count(s => s == 200));
        Assert.Equal(50, statuses.Count(s => s == 503));
        Assert.Equal(50, times.Length);

        // Slots are 100 ms apart from the first decision, which came after the burst started: the k-th request to arrive
        // never arrives before k × 100 ms from then (5 ms of slack: the memory store reads the clock once per OS tick).
        // A timer fires at or after its time, and a loaded machine runs a continuation late, so single gaps vary; the
        // median gap is the interval, and the whole takes about 4.9 s.
        var sinceStart = arrivals.Order().Select(t => Stopwatch.GetElapsedTime(started, t).TotalMilliseconds).ToArray();
        for (var k = 0; k < sinceStart.Length; k++)
        {
            Assert.True(sinceStart[k] >= (k * 100) - 5, $"request {k} arrived at {sinceStart[k]:0.0} ms, before its slot at {k * 100} ms");
        }

        Assert.InRange(times[^1], 4_700, 5_600);
        Assert.InRange(gaps[gaps.Length / 2], 90, 110);
    }

    private static async Task<int[]> BurstAsync(AppHost[] hosts, int count)
    {
        var sends = Enumerable.Range(0, count).Select(async i =>
        {
            using var response = await hosts[i % hosts.Length].Client.GetAsync(new Uri("/export", UriKind.Relative));
            return (int)response.StatusCode;
        });
        return await Task.WhenAll(sends);
    }

    private async Task<AppHost> StartAsync(ConcurrentQueue<long> arrivals, bool redis)
    {
        var builder = AppHost.CreateBuilder();
        if (redis)
        {
            builder.Services.AddFloodgateRedisStore(o =>
            {
                o.Configuration = _redis.Configuration;
                o.FailureMode = StoreFailureMode.Closed;
                o.Timeout = TimeSpan.FromSeconds(2);
            });
        }

        builder.Services.AddFloodgate(o => o.AddPolicy("export", Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromSeconds(5)), RateLimitTier.Service, []));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/export", () =>
        {
            arrivals.Enqueue(Stopwatch.GetTimestamp());
            return "ok";
        }).RequireFloodgate("export");
        return await AppHost.StartAsync(app);
    }
}
