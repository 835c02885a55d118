using System.Diagnostics;
using System.Net;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Queueing;
using Floodgate.Rules;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>
/// A concurrency queue across two replicas on one redis-server: a release on one (release.lua publishes it) wakes the
/// request waiting on the other, without polling Redis (its queue's poll is set to five minutes here, so only the notice
/// can wake it within the test's bound), in two Redis calls per wait (the first decision and the one after the notice);
/// and when the notice is lost, the queue's poll finds the free permit.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class ReleaseNoticeTests(RedisFixture fixture, ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private static readonly Limit Queued = Limit.Concurrency(1, TimeSpan.FromMinutes(1)).WithQueue(4, TimeSpan.FromMinutes(1));

    private static RateLimitPolicy Policy() => new([new RateLimitRule("reports", RateLimitTier.Service, Queued)]);

    private static RequestContext Request() => new() { Path = "/report", ClientIp = IPAddress.Loopback };

    private static Task<RateLimitResult> Queue(RateLimitEngine engine) =>
        engine.EvaluateQueuedAsync(engine.Policy, Request(), RateLimitTier.Edge, RateLimitTier.Global, ReadOnlyMemory<RateLimitCheck>.Empty).AsTask();

    [Fact]
    public async Task A_release_on_one_replica_wakes_the_waiter_on_the_other_through_the_notice_alone()
    {
        var prefix = "n" + Guid.NewGuid().ToString("N")[..10];
        await using var redisA = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        await using var redisB = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        var a = new RateLimitEngine(Policy(), redisA);
        var storeB = new CountingStore(redisB);
        var queuesB = PermitQueues.For(storeB, TimeProvider.System, TimeSpan.FromMinutes(5));
        var b = new RateLimitEngine(Policy(), storeB);

        const int Rounds = 20;
        var latencies = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            var held = await Queue(a);
            Assert.True(held.IsAllowed);
            var calls = storeB.Decisions;
            var waiting = Queue(b);
            await Until(() => queuesB.Waiters == 1);
            Assert.False(waiting.IsCompleted);

            var released = Stopwatch.GetTimestamp();
            await a.ReleaseAsync(held);
            var served = await waiting.WaitAsync(Bound);
            latencies.Add(Stopwatch.GetElapsedTime(released).TotalMilliseconds);
            Assert.True(served.IsAllowed);

            // The first decision and the one after the notice: no poll of Redis while it waited.
            Assert.Equal(2, storeB.Decisions - calls);
            await b.ReleaseAsync(served);
        }

        Assert.Equal(0, queuesB.Polls);
        Assert.True(redisB.NoticesHeard >= Rounds);
        latencies.Sort();
        output.WriteLine($"wake-up after a release on the other replica, {Rounds} waits: median {latencies[Rounds / 2]:0.00} ms, max {latencies[^1]:0.00} ms; 2 decisions per wait");
    }

    [Fact]
    public async Task A_lost_notice_costs_a_waiter_one_poll_of_its_queue()
    {
        var prefix = "n" + Guid.NewGuid().ToString("N")[..10];
        await using var redisA = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        await using var redisB = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        var a = new RateLimitEngine(Policy(), redisA);
        var queuesB = PermitQueues.For(redisB, TimeProvider.System, TimeSpan.FromMilliseconds(100));
        var b = new RateLimitEngine(Policy(), redisB);

        var held = await Queue(a);
        var waiting = Queue(b);
        await Until(() => queuesB.Waiters == 1);

        // Released by a check that does not queue: release.lua frees the permit and publishes nothing (a lost notice).
        var (check, leaseId) = held.Leases![0];
        await redisA.ReleaseAsync(check with { Limit = Limit.Concurrency(1, TimeSpan.FromMinutes(1)) }, leaseId);
        var served = await waiting.WaitAsync(Bound);
        Assert.True(served.IsAllowed);
        Assert.True(queuesB.Polls >= 1);
        Assert.Equal(0, redisB.NoticesHeard);
        await b.ReleaseAsync(served);
    }

    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition never held");
            await Task.Delay(2);
        }
    }

    /// <summary>The Redis store, counting its staged decisions (one script run each) and forwarding its release notices.</summary>
    private sealed class CountingStore(RedisStore inner) : DelegatingStore<RedisStore>(inner), IPermitReleaseNotifier
    {
        private int _decisions;

        public event Action<StoreKey>? PermitReleased
        {
            add => Inner.PermitReleased += value;
            remove => Inner.PermitReleased -= value;
        }

        public int Decisions => Volatile.Read(ref _decisions);

        public override ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _decisions);
            return Inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);
        }
    }
}
