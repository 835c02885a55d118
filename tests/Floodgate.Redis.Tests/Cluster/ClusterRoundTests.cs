using System.Diagnostics;
using System.Net;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// A decision in several rounds on a cluster (stages of different nodes) whose caller cancels a later round, or whose
/// time an earlier round used up. Each test pauses one master (CLIENT PAUSE) of this class's own cluster.
/// </summary>
public sealed class ClusterRoundTests(ClusterFixture cluster) : IClassFixture<ClusterFixture>
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_lease_taken_in_an_earlier_round_is_freed_when_the_caller_cancels_a_later_one(bool local)
    {
        var prefix = "cr" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromSeconds(10);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
            o.OverLimitCache = false;
        }, prefix: prefix);
        var only = Limit.Concurrency(1, TimeSpan.FromMinutes(10));
        var (first, later) = OnTwoNodes(store,
            i => new RateLimitCheck(only, StoreKey.Create("first", "user" + i), 1, false) { OnStoreFailure = local ? StoreFailureMode.Local : StoreFailureMode.Default },
            i => new RateLimitCheck(only, StoreKey.Create("later", "user" + i), 1, false));

        // Each node has the script (no NOSCRIPT round trip below), the first permit is free, and another request holds
        // the later one.
        var warm = await store.DecideOneAsync(first);
        Assert.False(warm.IsStoreFailure);
        await store.ReleaseAsync(first, warm.LeaseId);
        var other = await store.DecideOneAsync(later);
        Assert.False(other.IsStoreFailure);
        Assert.NotEqual(0, other.LeaseId);
        if (local)
        {
            // The first identity's node answers its call with an error (WRONGTYPE): the permit is taken from the local
            // fallback, in this process.
            Assert.True(await store.Database().StringSetAsync(TestStores.KeyOf(store, first), "not a lease set"));
        }

        // Round 1 takes the only permit (in Redis, or locally); round 2 waits on a paused node, and its caller gives up.
        var paused = Owner(store, later);
        Assert.Equal("OK", paused.Cli("CLIENT", "PAUSE", "3000", "ALL"));
        try
        {
            var trips = store.RoundTrips;
            using var cancel = new CancellationTokenSource();

            // The outcomes are rented: they still hold the other request's lease, which must stay with it.
            var outcomes = new StoreOutcome[] { default, other };
            var decision = store.DecideStagesAsync(new[] { first, later }, new[] { 1, 2 }, outcomes, cancel.Token).AsTask();
            var watch = Stopwatch.StartNew();
            while (store.RoundTrips < trips + 2 && watch.Elapsed < TimeSpan.FromSeconds(5))
            {
                await Task.Delay(5);
            }

            Assert.Equal(trips + 2, store.RoundTrips);
            Assert.False(decision.IsCompleted, "round 2 was answered before it was cancelled");
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decision);

            // Nobody will release the permit round 1 took: the store did, when the decision was cancelled.
            var again = await store.DecideOneAsync(first);
            Assert.Equal(local, again.IsStoreFailure);
            Assert.True(again.Outcome.IsAllowed, "the permit taken in round 1 of a cancelled decision was never freed");
        }
        finally
        {
            paused.Cli("CLIENT", "UNPAUSE");
        }

        // Decided after round 2's call and its queued release: the other request still holds its permit.
        var taken = await store.DecideOneAsync(later);
        Assert.False(taken.IsStoreFailure);
        Assert.False(taken.Outcome.IsAllowed, "a lease id left in the rented outcomes was released");
        await store.ReleaseAsync(later, other.LeaseId);
        Assert.True((await store.DecideOneAsync(later)).Outcome.IsAllowed);
    }

    [Fact]
    public async Task A_lease_taken_in_an_earlier_round_stays_with_the_request_when_a_later_round_times_out()
    {
        // The outcomes are returned: the request holds the lease, and the engine releases it when the request ends.
        var prefix = "ct" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(300);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
            o.OverLimitCache = false;
        }, prefix: prefix);
        var (first, later) = OnTwoNodes(store,
            i => new RateLimitCheck(Limit.Concurrency(1, TimeSpan.FromMinutes(10)), StoreKey.Create("first", "user" + i), 1, false),
            i => new RateLimitCheck(Limit.FixedWindow(new Rate(1000, 1, RateUnit.Hour)), StoreKey.Create("later", "user" + i), 1, false));
        var warm = await store.DecideOneAsync(first);
        Assert.False(warm.IsStoreFailure);
        await store.ReleaseAsync(first, warm.LeaseId);
        Assert.True(await TestStores.DecidedInRedisAsync(store, later, 1));

        var paused = Owner(store, later);
        Assert.Equal("OK", paused.Cli("CLIENT", "PAUSE", "2000", "ALL"));
        try
        {
            var outcomes = new StoreOutcome[2];
            Assert.Equal(2, await store.DecideStagesAsync(new[] { first, later }, new[] { 1, 2 }, outcomes));
            Assert.False(outcomes[0].IsStoreFailure);
            Assert.NotEqual(0, outcomes[0].LeaseId);
            Assert.True(outcomes[1].IsStoreFailure);

            Assert.False((await store.DecideOneAsync(first)).Outcome.IsAllowed, "the lease handed to the request was released under it");
            await store.ReleaseAsync(first, outcomes[0].LeaseId);
            Assert.True((await store.DecideOneAsync(first)).Outcome.IsAllowed);
        }
        finally
        {
            paused.Cli("CLIENT", "UNPAUSE");
        }
    }

    [Fact]
    public async Task A_later_round_is_not_sent_once_an_earlier_one_used_up_the_time()
    {
        await using var store = await ConnectHeldToTheDeadlineAsync();
        var limit = Limit.FixedWindow(new Rate(10, 1, RateUnit.Hour));
        var (first, later) = OnTwoNodes(store,
            i => new RateLimitCheck(limit, StoreKey.Create("first", "user" + i), 1, false),
            i => new RateLimitCheck(limit, StoreKey.Create("later", "user" + i), 1, false));
        Assert.True(await TestStores.DecidedInRedisAsync(store, first, 1));
        Assert.True(await TestStores.DecidedInRedisAsync(store, later, 1));

        // Round 1 waits on a paused node until the decision's deadline; on_failure: open lets the request on to round 2.
        var paused = Owner(store, first);
        Assert.Equal("OK", paused.Cli("CLIENT", "PAUSE", "2000", "ALL"));
        try
        {
            var trips = store.RoundTrips;
            var failures = store.Failures;
            var outcomes = new StoreOutcome[2];
            Assert.Equal(2, await store.DecideStagesAsync(new[] { first, later }, new[] { 1, 2 }, outcomes));
            Assert.All(outcomes, o => Assert.True(o.IsStoreFailure && o.Outcome.IsAllowed));

            // No time was left for round 2: it was not sent, and its node's breaker was not charged with its timeout.
            Assert.Equal(trips + 1, store.RoundTrips);
            Assert.Equal(failures + 2, store.Failures);
            await AssertOnlyThePausedNodeFailedAsync(store, later);
        }
        finally
        {
            paused.Cli("CLIENT", "UNPAUSE");
        }
    }

    [Theory]
    [InlineData("noscript")]
    [InlineData("calendar_skew")]
    public async Task A_call_is_not_sent_again_once_the_time_is_up(string reason)
    {
        // A calendar skew: this replica's clock is two days behind the servers', so every calendar quota's call is
        // answered with the server's time and sent again.
        await using var store = await ConnectHeldToTheDeadlineAsync(reason == "calendar_skew" ? TestStores.Clock(DateTimeOffset.UtcNow.AddDays(-2)) : null);
        var limit = reason == "calendar_skew" ? Limit.Quota(new Rate(10, 1, RateUnit.Day), QuotaCalendar.Utc) : Limit.FixedWindow(new Rate(10, 1, RateUnit.Hour));
        var (first, later) = OnTwoNodes(store,
            i => new RateLimitCheck(limit, StoreKey.Create("first", "user" + i), 1, false),
            i => new RateLimitCheck(limit, StoreKey.Create("later", "user" + i), 1, false));
        Assert.True(await TestStores.DecidedInRedisAsync(store, first, 1));
        Assert.True(await TestStores.DecidedInRedisAsync(store, later, 1));
        var answering = Owner(store, later);
        if (reason == "noscript")
        {
            Assert.Equal("OK", answering.Cli("SCRIPT", "FLUSH"));
        }

        // One stage, two identities, two nodes: the call to the paused one holds the round until the deadline, while
        // the other's answer (NOSCRIPT, or the server's time) asks for the call to be sent again.
        var paused = Owner(store, first);
        Assert.Equal("OK", paused.Cli("CLIENT", "PAUSE", "2000", "ALL"));
        try
        {
            var trips = store.RoundTrips;
            var failures = store.Failures;
            var outcomes = await store.DecideAsync(first, later);
            Assert.All(outcomes, o => Assert.True(o.IsStoreFailure && o.Outcome.IsAllowed));

            // No time was left to send it again: it was not, and the node that answered was not charged with a failure.
            Assert.Equal(trips + 2, store.RoundTrips);
            Assert.Equal(failures + 1, store.Failures);
            await AssertOnlyThePausedNodeFailedAsync(store, later);
        }
        finally
        {
            paused.Cli("CLIENT", "UNPAUSE");
        }
    }

    /// <summary>A store whose calls to a paused node time out after 300 ms, opening that node's breaker, and admit (open).</summary>
    private Task<RedisStore> ConnectHeldToTheDeadlineAsync(TimeProvider? time = null) =>
        TestStores.ConnectAsync(cluster.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(300);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1;
            o.BreakerDuration = TimeSpan.FromMinutes(1);
            o.OverLimitCache = false;
        }, time: time, prefix: "dl" + Guid.NewGuid().ToString("N")[..6]);

    /// <summary>
    /// Only the paused node's breaker is open, and <paramref name="later"/>'s key, on the node that answered, holds the one
    /// hit of the warm-up of a limit of 10: the call not sent again charged nothing.
    /// </summary>
    private static async Task AssertOnlyThePausedNodeFailedAsync(RedisStore store, RateLimitCheck later)
    {
        Assert.Equal(1, store.OpenCircuits);
        var probe = await store.DecideOneAsync(later with { Cost = 0 });
        Assert.False(probe.IsStoreFailure);
        Assert.Equal(9, probe.Outcome.Remaining);
    }

    /// <summary>The first checks <paramref name="first"/> and <paramref name="later"/> make whose keys are on different masters.</summary>
    private (RateLimitCheck First, RateLimitCheck Later) OnTwoNodes(RedisStore store, Func<int, RateLimitCheck> first, Func<int, RateLimitCheck> later)
    {
        var one = first(0);
        for (var i = 0; i < 100; i++)
        {
            var other = later(i);
            if (Owner(store, other) != Owner(store, one))
            {
                return (one, other);
            }
        }

        throw new InvalidOperationException("No key of another master in 100 tries.");
    }

    /// <summary>The master that owns the slot of <paramref name="check"/>'s key.</summary>
    private RedisServer Owner(RedisStore store, RateLimitCheck check)
    {
        var key = RedisKeys.For(store.Options.KeyPrefix, check.Key, check.Limit.Algorithm);
        var configuration = store.Connection.GetServers().First(s => s.IsConnected).ClusterConfiguration!;
        var port = configuration.GetBySlot(key)!.EndPoint switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            var other => throw new InvalidOperationException($"Unexpected endpoint {other}."),
        };
        return cluster.Nodes.Single(n => n.Port == port);
    }
}
