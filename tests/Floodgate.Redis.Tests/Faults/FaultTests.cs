using System.Diagnostics;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>Kills a real redis-server in the middle of a load, then starts it again.</summary>
public sealed class FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(50);

    // Scheduling slack on a shared 2-core machine: a decision may be answered a little after its timeout fires.
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(200);

    public static TheoryData<StoreFailureMode> Modes() => [StoreFailureMode.Open, StoreFailureMode.Closed, StoreFailureMode.Local];

    [Theory]
    [MemberData(nameof(Modes))]
    public async Task Decisions_follow_on_failure_while_redis_is_down_and_recover_after(StoreFailureMode mode)
    {
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = Timeout;
            o.FailureMode = mode;
            o.Replicas = 2;
            o.BreakerFailureThreshold = 3;
            o.BreakerDuration = TimeSpan.FromMilliseconds(200);
            o.OverLimitCache = false;
        });
        var limit = Limit.Gcra(new Rate(10, 1, RateUnit.Minute));
        var check = new RateLimitCheck(limit, StoreKey.Create("fault", "alice"), 1, false);
        var probe = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("probe", "bob"), 1, false);
        var outcomes = new StoreOutcome[1];

        // Up: decided in Redis. (A 50 ms timeout can fire on this shared machine, so wait for steady success.)
        Assert.True(await TestStores.DecidedInRedisAsync(store, probe, 5), "the store never reached Redis");

        server.Kill();

        // Down: every decision follows on_failure, flagged, and costs no more than the timeout.
        var allowed = 0;
        var slowest = TimeSpan.Zero;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 200 && watch.Elapsed < TimeSpan.FromSeconds(10); i++)
        {
            var one = Stopwatch.StartNew();
            await store.DecideAsync(new[] { check }, outcomes);
            slowest = one.Elapsed > slowest ? one.Elapsed : slowest;
            Assert.True(outcomes[0].IsStoreFailure, $"decision {i} after the kill was not flagged as a store failure");
            if (outcomes[0].Outcome.IsAllowed)
            {
                allowed++;
            }
        }

        output.WriteLine($"{mode}: the slowest of the decisions after the kill took {slowest.TotalMilliseconds:F1} ms");
        Assert.True(slowest <= Timeout + Slack, $"the slowest decision took {slowest.TotalMilliseconds} ms");
        Assert.False(store.IsCircuitClosed);
        Assert.True(store.Failures > 0);
        switch (mode)
        {
            case StoreFailureMode.Open:
                Assert.Equal(200, allowed);
                break;
            case StoreFailureMode.Closed:
                Assert.Equal(0, allowed);
                break;
            default:
                // 10/min divided between 2 replicas: 5 in this process.
                Assert.Equal(5, allowed);
                break;
        }

        // Back up: the store recovers by itself, and reloads its script into the new, empty server.
        server.Restart();
        Assert.True(await TestStores.DecidedInRedisAsync(store, probe, 3), "the store did not recover within 20 s of the restart");
        Assert.True(store.IsCircuitClosed);
        var sha = TestStores.ScriptSha;
        Assert.Equal("1", server.Cli("SCRIPT", "EXISTS", sha));
        Assert.True(await TestStores.DecidedInRedisAsync(store, check, 1));
    }

    /// <summary>A store pointed at a free loopback port where nothing listens.</summary>
    private static Task<RedisStore> ConnectToNothingAsync(StoreFailureMode mode, Action<RedisStoreOptions>? configure = null)
    {
        var options = new RedisStoreOptions
        {
            Configuration = $"127.0.0.1:{RedisServer.FreePort(cluster: false)},connectTimeout=200",
            Timeout = Timeout,
            FailureMode = mode,
        };
        configure?.Invoke(options);
        return RedisStore.ConnectAsync(options);
    }

    [Fact]
    public async Task Each_check_follows_its_own_on_failure_and_the_rest_the_store_s()
    {
        await using var store = await ConnectToNothingAsync(StoreFailureMode.Open, o =>
        {
            o.Replicas = 2;
            o.OverLimitCache = false;
        });
        var limit = Limit.Gcra(new Rate(4, 1, RateUnit.Minute));
        var open = new RateLimitCheck(limit, StoreKey.Create("open", "alice"), 1, false);
        var closed = new RateLimitCheck(limit, StoreKey.Create("closed", "alice"), 1, false) { OnStoreFailure = StoreFailureMode.Closed };
        var local = new RateLimitCheck(limit, StoreKey.Create("local", "alice"), 1, false) { OnStoreFailure = StoreFailureMode.Local };

        // One call, three modes: the store's own (open) allows, the closed rule denies with a retry, and the local rule,
        // of the same identity, is only read: the request is denied, so it consumes nothing.
        var outcomes = await store.DecideAsync(open, closed, local);
        Assert.All(outcomes, o => Assert.True(o.IsStoreFailure));
        Assert.True(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[1].Outcome.IsAllowed);
        Assert.True(outcomes[1].Outcome.RetryAfterMicroseconds > 0);
        Assert.True(outcomes[2].Outcome.IsAllowed);
        Assert.False(outcomes[2].Committed);

        // Alone, the local rule spends its replica's share (4 / 2 replicas) in process; the open one never stops.
        var spent = new List<bool>();
        for (var i = 0; i < 3; i++)
        {
            spent.Add((await store.DecideAsync(local))[0].Outcome.IsAllowed);
        }

        Assert.Equal([true, true, false], spent);
        Assert.True((await store.DecideAsync(open))[0].Outcome.IsAllowed);

        // In stages, a closed rule's denial stops the request as a rejection would: the stage after it is not decided.
        var stages = new StoreOutcome[3];
        var decided = await store.DecideStagesAsync(new[] { open, closed, open with { Key = StoreKey.Create("later", "bob") } }, new[] { 1, 2, 3 }, stages);
        Assert.Equal(2, decided);
        Assert.True(stages[0].Outcome.IsAllowed);
        Assert.False(stages[1].Outcome.IsAllowed);
        Assert.Equal(default, stages[2]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_lease_taken_by_a_call_given_up_on_is_freed(bool timeout)
    {
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = timeout ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(10);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
            o.OverLimitCache = false;
        });
        using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Configuration + ",allowAdmin=true");
        var only = new RateLimitCheck(Limit.Concurrency(1, TimeSpan.FromMinutes(10)), StoreKey.Create("abandoned", "alice"), 1, false);
        var probe = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("probe", "bob"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, probe, 1), "the store never reached Redis");

        // Redis holds every command for a moment: the call for the only permit is sent, and its caller gives up on it
        // (by cancelling, or by the store's timeout). The script still runs once Redis resumes, and takes the permit.
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "600", "ALL");
        var outcomes = new StoreOutcome[1];
        if (timeout)
        {
            await store.DecideAsync(new[] { only }, outcomes);
            Assert.True(outcomes[0].IsStoreFailure);
        }
        else
        {
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await store.DecideAsync(new[] { only }, outcomes, cancel.Token));
        }

        // Nobody will release that permit, so the store queued its release behind the script: once Redis answers
        // again, the permit is free.
        Assert.True(await TestStores.DecidedInRedisAsync(store, probe, 1), "Redis did not come back");
        outcomes = await store.DecideAsync(only);
        Assert.False(outcomes[0].IsStoreFailure);
        Assert.True(outcomes[0].Outcome.IsAllowed, "the permit taken by the abandoned call was never freed");
    }

    [Fact]
    public async Task A_release_is_not_sent_while_the_breaker_is_open()
    {
        // A hung Redis (paused, not dead: commands wait rather than fail) opens the breaker; a request that ends then
        // must not wait out the timeout to release its lease, which frees itself at its lease timeout.
        using var server = RedisServer.Start();
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(300);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1;
            o.BreakerDuration = TimeSpan.FromMinutes(10);
        });
        using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Configuration + ",allowAdmin=true");
        var check = new RateLimitCheck(Limit.Concurrency(5, TimeSpan.FromMinutes(1)), StoreKey.Create("hung", "alice"), 1, false);
        var held = (await store.DecideAsync(check))[0];
        Assert.False(held.IsStoreFailure);

        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "2000", "ALL");
        Assert.True((await store.DecideAsync(check))[0].IsStoreFailure);
        Assert.False(store.IsCircuitClosed);

        var failures = store.Failures;
        var release = store.ReleaseAsync(check, held.LeaseId);
        Assert.True(release.IsCompleted, "the release waited on a node whose breaker is open");
        await release;
        Assert.Equal(failures + 1, store.Failures);
        await admin.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");
    }

    [Fact]
    public async Task A_failure_that_opens_no_breaker_is_logged()
    {
        // One timeout, far below the breaker's threshold: it must still reach the log (at most one line a second).
        using var server = RedisServer.Start();
        var logger = new FakeLogger<RedisStore>();
        await using var store = await TestStores.ConnectAsync(server.Configuration, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(200);
            o.FailureMode = StoreFailureMode.Open;
            o.BreakerFailureThreshold = 1000;
        }, logger: logger);
        using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Configuration + ",allowAdmin=true");
        var check = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("logged", "alice"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, check, 1), "the store never reached Redis");

        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "1000", "ALL");
        Assert.True((await store.DecideAsync(check))[0].IsStoreFailure);
        Assert.True(store.IsCircuitClosed);
        Assert.Contains(logger.Lines(), m => m.Contains("timeout", StringComparison.Ordinal));
        await admin.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");
    }

    [Fact]
    public async Task A_wall_clock_stepped_back_does_not_hold_the_breaker_open()
    {
        // The breaker measures its open time on the monotonic clock: stepping the wall clock back an hour (NTP, a
        // resumed VM) must not keep answering by the failure mode for an hour.
        using var server = RedisServer.Start();
        var clock = new SteppedClock(DateTimeOffset.UtcNow);
        await using var store = await TestStores.ConnectAsync(server, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(200);
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerFailureThreshold = 1;
            o.BreakerDuration = TimeSpan.FromSeconds(1);
        }, clock);
        using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Configuration + ",allowAdmin=true");
        var check = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("stepped", "alice"), 1, false);
        Assert.True(await TestStores.DecidedInRedisAsync(store, check, 1), "the store never reached Redis");

        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "500", "ALL");
        Assert.True((await store.DecideAsync(check))[0].IsStoreFailure);
        Assert.False(store.IsCircuitClosed);
        await admin.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");

        clock.Wall -= TimeSpan.FromHours(1);
        clock.Steady += TimeSpan.FromSeconds(2);
        var outcome = (await store.DecideAsync(check))[0];
        Assert.False(outcome.IsStoreFailure, "the breaker stayed open after the wall clock stepped back");
        Assert.True(store.IsCircuitClosed);
    }

    /// <summary>A clock whose wall time and monotonic time the test moves apart.</summary>
    private sealed class SteppedClock(DateTimeOffset wall) : TimeProvider
    {
        public DateTimeOffset Wall { get; set; } = wall;

        public TimeSpan Steady { get; set; }

        public override DateTimeOffset GetUtcNow() => Wall;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Steady.Ticks;
    }

    [Fact]
    public async Task Decisions_made_while_connecting_leave_no_breaker_open_once_connected()
    {
        // The store connects in the background (as AddFloodgateRedisStore makes it) to a Redis that answers late; the
        // requests meanwhile are answered by the failure mode, and must not hold the breaker open once it is connected.
        using var server = RedisServer.Start();
        using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.Configuration + ",allowAdmin=true");
        await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "700", "ALL");
        await using var store = RedisStore.Start(new RedisStoreOptions
        {
            Configuration = server.Configuration + ",connectTimeout=10000",
            KeyPrefix = "connecting",
            Timeout = TimeSpan.FromMilliseconds(50),
            FailureMode = StoreFailureMode.Closed,
            BreakerDuration = TimeSpan.FromMinutes(10),
        });
        var check = new RateLimitCheck(Limit.Gcra(new Rate(1000, 1, RateUnit.Second)), StoreKey.Create("connecting", "alice"), 1, false);
        for (var i = 0; i < 10; i++)
        {
            Assert.True((await store.DecideAsync(check))[0].IsStoreFailure);
        }

        Assert.False(store.IsCircuitClosed);
        await store.Connecting.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.True(store.IsCircuitClosed);
        Assert.False((await store.DecideAsync(check))[0].IsStoreFailure);
    }

    [Fact]
    public async Task A_store_starts_while_redis_is_down_and_never_throws()
    {
        await using var store = await ConnectToNothingAsync(StoreFailureMode.Closed);
        var check = new RateLimitCheck(Limit.Concurrency(5), StoreKey.Create("down", "alice"), 1, false);
        var outcomes = await store.DecideAsync(check, check with { Key = StoreKey.Create("down", "bob") });
        Assert.All(outcomes, o => Assert.True(o.IsStoreFailure && !o.Outcome.IsAllowed));
        Assert.True(outcomes[0].Outcome.RetryAfterMicroseconds > 0);
        await store.ReleaseAsync(check, 1L << 62 | 42);
        Assert.False(store.TryDecide(new[] { check }, new StoreOutcome[1]));
    }
}
