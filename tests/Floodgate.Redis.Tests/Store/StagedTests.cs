using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// <see cref="RedisStore.DecideStagesAsync(ReadOnlyMemory{RateLimitCheck}, ReadOnlyMemory{int}, Memory{StoreOutcome}, CancellationToken)"/>
/// on one redis-server: a whole request in one round trip, and the stages after a rejecting one untouched.
/// </summary>
public abstract class StagedTests(IServerFixture fixture)
{
    private static readonly Limit TwoPerHour = Limit.FixedWindow(new Rate(2, 1, RateUnit.Hour));
    private static readonly Limit TenPerHour = Limit.FixedWindow(new Rate(10, 1, RateUnit.Hour));

    /// <summary>An edge check (per IP), a user check (per subject) and a global check: three identities, three stages.</summary>
    private static RateLimitCheck[] Request(Limit edge, string ip = "192.0.2.1", string user = "alice") =>
    [
        new(edge, StoreKey.Create("edge", ip), 1, false),
        new(TenPerHour, StoreKey.Create("user", user), 1, false),
        new(TenPerHour, StoreKey.Create("global", "all"), 1, false),
    ];

    private static readonly int[] ThreeStages = [1, 2, 3];

    private static async Task<long> RemainingAsync(RedisStore store, RateLimitCheck check) =>
        (await store.DecideOneAsync(check with { Cost = 0 })).Outcome.Remaining;

    [Fact]
    public async Task Three_tiers_of_three_identities_are_one_round_trip()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var checks = Request(TwoPerHour);
        var outcomes = new StoreOutcome[3];
        Assert.Equal(3, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
        Assert.All(outcomes, o => Assert.True(o.Committed && !o.IsStoreFailure));
        Assert.Equal(1, store.RoundTrips);
        Assert.Equal([1L, 9L, 9L], outcomes.Select(o => o.Outcome.Remaining));
    }

    [Fact]
    public async Task A_rejecting_first_stage_leaves_the_later_stages_uncharged_in_the_same_round_trip()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var checks = Request(TwoPerHour);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(3, await store.DecideStagesAsync(checks, ThreeStages, new StoreOutcome[3]));
        }

        var outcomes = new StoreOutcome[3];
        Assert.Equal(1, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal(default, outcomes[1]);
        Assert.Equal(default, outcomes[2]);
        Assert.Equal(3, store.RoundTrips);

        Assert.Equal(8, await RemainingAsync(store, checks[1]));
        Assert.Equal(8, await RemainingAsync(store, checks[2]));
    }

    [Fact]
    public async Task A_rejecting_middle_stage_is_decided_whole_and_the_last_is_not()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var checks = new RateLimitCheck[]
        {
            new(TenPerHour, StoreKey.Create("edge", "192.0.2.1"), 1, false),
            new(TenPerHour, StoreKey.Create("user", "alice"), 1, false),
            new(TwoPerHour, StoreKey.Create("orders", "alice"), 3, false),
            new(TenPerHour, StoreKey.Create("user-shadow", "bob"), 1, true),
            new(TenPerHour, StoreKey.Create("global", "all"), 1, false),
        };
        var outcomes = new StoreOutcome[5];
        Assert.Equal(2, await store.DecideStagesAsync(checks, new[] { 1, 4, 5 }, outcomes));
        Assert.True(outcomes[0].Committed);

        // Alice's identity is denied whole; bob's group in the same stage is independent and commits.
        Assert.True(outcomes[1].Outcome.IsAllowed);
        Assert.False(outcomes[1].Committed);
        Assert.False(outcomes[2].Outcome.IsAllowed);
        Assert.True(outcomes[3].Committed);
        Assert.Equal(default, outcomes[4]);
        Assert.Equal(1, store.RoundTrips);
        Assert.Equal(10, await RemainingAsync(store, checks[1]));
        Assert.Equal(10, await RemainingAsync(store, checks[4]));
    }

    [Fact]
    public async Task A_cached_denial_in_the_first_stage_costs_no_round_trip()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var checks = Request(TwoPerHour);
        for (var i = 0; i < 3; i++)
        {
            await store.DecideStagesAsync(checks, ThreeStages, new StoreOutcome[3]);
        }

        var trips = store.RoundTrips;
        var outcomes = new StoreOutcome[3];
        Assert.Equal(1, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[0].Outcome.RetryAfterMicroseconds > 0);
        Assert.Equal(trips, store.RoundTrips);
    }

    [Fact]
    public async Task A_cached_denial_in_a_later_stage_sends_only_the_stages_before_it()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var user = new RateLimitCheck(TwoPerHour, StoreKey.Create("user", "alice"), 1, false);
        for (var i = 0; i < 3; i++)
        {
            await store.DecideOneAsync(user);
        }

        // The user stage is denied from the cache; the edge stage before it is still decided (and charged) in Redis,
        // and the global stage after it is not sent.
        var checks = new RateLimitCheck[]
        {
            new(TenPerHour, StoreKey.Create("edge", "192.0.2.1"), 1, false),
            user,
            new(TenPerHour, StoreKey.Create("global", "all"), 1, false),
        };
        var trips = store.RoundTrips;
        var outcomes = new StoreOutcome[3];
        Assert.Equal(2, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
        Assert.True(outcomes[0].Committed);
        Assert.False(outcomes[1].Outcome.IsAllowed);
        Assert.Equal(trips + 1, store.RoundTrips);
        Assert.Equal(9, await RemainingAsync(store, checks[0]));
        Assert.Equal(10, await RemainingAsync(store, checks[2]));
    }

    [Fact]
    public async Task A_leased_slice_taken_for_a_stage_that_is_not_decided_is_given_back()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var leased = Limit.FixedWindow(new Rate(1000, 1, RateUnit.Hour)).WithLeasedSlice(10);
        var global = new RateLimitCheck(leased, StoreKey.Create("global", "all"), 1, false);

        // The first decision takes a slice of 10 in Redis and spends 1 of it.
        var first = await store.DecideOneAsync(global);
        Assert.True(first.Committed);

        // The edge rejects in Redis; the global check's local take from the slice is given back.
        var edge = new RateLimitCheck(Limit.FixedWindow(new Rate(1, 1, RateUnit.Hour)), StoreKey.Create("edge", "192.0.2.9"), 2, false);
        var outcomes = new StoreOutcome[2];
        Assert.Equal(1, await store.DecideStagesAsync(new[] { edge, global }, new[] { 1, 2 }, outcomes));
        Assert.Equal(default, outcomes[1]);

        // Nine left in the slice: nine more local decisions, then a round trip for the next slice.
        var trips = store.RoundTrips;
        for (var i = 0; i < 9; i++)
        {
            Assert.True((await store.DecideOneAsync(global)).Committed);
        }

        Assert.Equal(trips, store.RoundTrips);
        Assert.True((await store.DecideOneAsync(global)).Committed);
        Assert.Equal(trips + 1, store.RoundTrips);
    }

    /// <summary>An edge ban as the middleware keeps it: one per minute, a burst of one.</summary>
    private static readonly Limit Ban = Limit.Gcra(new Rate(1, 60, RateUnit.Second), 1);

    [Fact]
    public async Task A_probe_stage_commits_nothing_and_its_denial_stops_the_later_stages_in_the_same_round_trip()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var ban = new RateLimitCheck(Ban, StoreKey.Create("ban:edge", "192.0.2.7"), 1, false);
        var request = Request(TenPerHour, ip: "192.0.2.7");
        RateLimitCheck[] checks = [ban with { IsProbe = true }, .. request];
        int[] stages = [1, 2, 3, 4];

        // Not banned: the probe is allowed and writes nothing; the tiers after it are decided in the same call.
        var outcomes = new StoreOutcome[4];
        Assert.Equal(4, await store.DecideStagesAsync(checks, stages, outcomes));
        Assert.True(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.All(outcomes[1..], o => Assert.True(o.Committed));
        Assert.Equal(1, store.RoundTrips);
        Assert.False(await store.Database().KeyExistsAsync(RedisKeys.For(store.Options.KeyPrefix, ban.Key, Ban.Algorithm)));

        // The ban starts (cost 1, committed); then the probe stage rejects, and no tier after it is charged.
        Assert.True((await store.DecideOneAsync(ban)).Committed);
        outcomes = new StoreOutcome[4];
        Assert.Equal(1, await store.DecideStagesAsync(checks, stages, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.InRange(outcomes[0].Outcome.RetryAfterMicroseconds, 55_000_000, 60_000_000);
        Assert.All(outcomes[1..], o => Assert.Equal(default, o));
        Assert.Equal(3, store.RoundTrips);
        Assert.Equal(9, await RemainingAsync(store, request[0]));
        Assert.Equal(9, await RemainingAsync(store, request[1]));
        Assert.Equal(9, await RemainingAsync(store, request[2]));

        // A shadow probe's denial stops nothing.
        outcomes = new StoreOutcome[4];
        Assert.Equal(4, await store.DecideStagesAsync(new RateLimitCheck[] { ban with { IsProbe = true, IsShadow = true }, request[0], request[1], request[2] }, stages, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.Equal(8, await RemainingAsync(store, request[1]));
    }

    [Fact]
    public async Task A_probe_in_a_group_is_never_written_and_its_denial_denies_the_group()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var permits = Limit.Concurrency(1, TimeSpan.FromMinutes(1));
        var fixedKey = StoreKey.Create("probe-fixed", "dave");
        var leaseKey = StoreKey.Create("probe-lease", "dave");
        var sibling = new RateLimitCheck(TenPerHour, StoreKey.Create("probe-sibling", "dave"), 1, false);
        var outcomes = await store.DecideAsync(
            new RateLimitCheck(TwoPerHour, fixedKey, 2, false) { IsProbe = true },
            new RateLimitCheck(permits, leaseKey, 1, false) { IsProbe = true },
            sibling);
        Assert.True(outcomes.All(o => o.Outcome.IsAllowed));
        Assert.Equal([false, false, true], outcomes.Select(o => o.Committed));
        Assert.Equal(0, outcomes[1].LeaseId);
        Assert.False(await store.Database().KeyExistsAsync(RedisKeys.For(store.Options.KeyPrefix, fixedKey, TwoPerHour.Algorithm)));
        Assert.False(await store.Database().KeyExistsAsync(RedisKeys.For(store.Options.KeyPrefix, leaseKey, permits.Algorithm)));

        // A probe whose cost does not fit denies its identity: the sibling, which fits, is not charged.
        outcomes = await store.DecideAsync(new RateLimitCheck(TwoPerHour, fixedKey, 3, false) { IsProbe = true }, sibling);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[1].Outcome.IsAllowed);
        Assert.False(outcomes[1].Committed);
        Assert.Equal(9, await RemainingAsync(store, sibling));
    }

    [Fact]
    public async Task A_denied_probe_is_answered_from_the_over_limit_cache_for_10_s_at_a_time_until_the_ban_ends_and_a_new_ban_is_seen()
    {
        var clock = TestStores.Clock(new DateTimeOffset(2026, 1, 15, 12, 0, 0, TimeSpan.Zero));
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var ban = new RateLimitCheck(Ban, StoreKey.Create("ban:edge", "192.0.2.8"), 1, false);
        var probe = ban with { IsProbe = true };
        var user = new RateLimitCheck(TenPerHour, StoreKey.Create("user", "erin"), 1, false);
        RateLimitCheck[] checks = [probe, user];
        int[] stages = [1, 2];
        var now = TestStores.Micros(clock.GetUtcNow());

        async Task<StoreOutcome[]> RequestAsync(int decided)
        {
            var outcomes = new StoreOutcome[2];
            Assert.Equal(decided, await store.DecideStagesAsync(checks, stages, outcomes, now));
            return outcomes;
        }

        async Task<long> UserRemainingAsync()
        {
            var outcomes = new StoreOutcome[1];
            await store.DecideAsync(new[] { user with { Cost = 0 } }, outcomes, now);
            return outcomes[0].Outcome.Remaining;
        }

        // Not banned: an allowed probe is not cached. The ban starts; the next probe goes to Redis, is denied, and cached.
        Assert.True((await RequestAsync(2))[0].Outcome.IsAllowed);
        Assert.Equal(0, store.CachedKeys);
        var started = new StoreOutcome[1];
        await store.DecideAsync(new[] { ban }, started, now);
        Assert.True(started[0].Committed);
        var trips = store.RoundTrips;
        Assert.False((await RequestAsync(1))[0].Outcome.IsAllowed);
        Assert.Equal(trips + 1, store.RoundTrips);
        Assert.Equal(1, store.CachedKeys);

        // Banned: answered locally, with a retry that decreases; charging the ban again is refused locally too.
        clock.Advance(TimeSpan.FromSeconds(5));
        now += 5_000_000;
        var local = await RequestAsync(1);
        Assert.False(local[0].Outcome.IsAllowed);
        Assert.False(local[0].Committed);
        Assert.Equal(55_000_000, local[0].Outcome.RetryAfterMicroseconds);
        Assert.False((await store.DecideOneAsync(ban)).Committed);
        Assert.Equal(trips + 1, store.RoundTrips);
        Assert.Equal(9, await UserRemainingAsync());

        // A ban is remembered for 10 s at most (a ban lifted in Redis is seen that soon): then Redis is asked again,
        // still denies, and the denial is remembered again.
        clock.Advance(TimeSpan.FromSeconds(15));
        now += 15_000_000;
        trips = store.RoundTrips;
        var asked = await RequestAsync(1);
        Assert.False(asked[0].Outcome.IsAllowed);
        Assert.Equal(40_000_000, asked[0].Outcome.RetryAfterMicroseconds);
        Assert.Equal(trips + 1, store.RoundTrips);
        Assert.False((await RequestAsync(1))[0].Outcome.IsAllowed);
        Assert.Equal(trips + 1, store.RoundTrips);

        // The ban is over: the cache lets the probe through to Redis, which allows it without writing.
        clock.Advance(TimeSpan.FromSeconds(40));
        now += 40_000_000;
        var after = await RequestAsync(2);
        Assert.True(after[0].Outcome.IsAllowed);
        Assert.False(after[0].Committed);
        Assert.True(after[1].Committed);
        Assert.Equal(0, store.CachedKeys);

        // A new ban, charged in Redis: the next probe is not answered from a stale allowance, but denied by Redis.
        await store.DecideAsync(new[] { ban }, started, now);
        Assert.True(started[0].Committed);
        trips = store.RoundTrips;
        var banned = await RequestAsync(1);
        Assert.False(banned[0].Outcome.IsAllowed);
        Assert.Equal(60_000_000, banned[0].Outcome.RetryAfterMicroseconds);
        Assert.Equal(trips + 1, store.RoundTrips);
    }

    [Theory]
    [InlineData(StoreFailureMode.Open, 3)]
    [InlineData(StoreFailureMode.Closed, 1)]
    [InlineData(StoreFailureMode.Local, 3)]
    public async Task While_redis_is_unreachable_the_failure_mode_answers_stage_by_stage(StoreFailureMode mode, int decided)
    {
        // Nothing listens on this port: every call fails fast.
        await using var store = await TestStores.ConnectAsync($"127.0.0.1:{RedisServer.FreePort(cluster: false)},connectTimeout=200", o =>
        {
            o.FailureMode = mode;
            o.Timeout = TimeSpan.FromMilliseconds(200);
        });
        var checks = Request(TwoPerHour);
        var outcomes = new StoreOutcome[3];
        Assert.Equal(decided, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
        for (var i = 0; i < decided; i++)
        {
            Assert.True(outcomes[i].IsStoreFailure);
            Assert.Equal(mode != StoreFailureMode.Closed, outcomes[i].Outcome.IsAllowed);
        }

        if (mode == StoreFailureMode.Local)
        {
            // The local limits are in force, stage by stage: the edge's 2 per hour rejects the third request.
            await store.DecideStagesAsync(checks, ThreeStages, new StoreOutcome[3]);
            Assert.Equal(1, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
            Assert.False(outcomes[0].Outcome.IsAllowed);
        }
    }
}
