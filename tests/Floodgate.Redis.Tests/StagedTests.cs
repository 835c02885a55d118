using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// <see cref="RedisStore.DecideStagesAsync(ReadOnlyMemory{RateLimitCheck}, ReadOnlyMemory{int}, Memory{StoreOutcome}, CancellationToken)"/>
/// on one redis-server: a whole request in one round trip, and the stages after a rejecting one untouched.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class StagedTests(RedisFixture fixture)
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

    [Theory]
    [InlineData(RedisFailureMode.Open, 3)]
    [InlineData(RedisFailureMode.Closed, 1)]
    [InlineData(RedisFailureMode.Local, 3)]
    public async Task While_redis_is_unreachable_the_failure_mode_answers_stage_by_stage(RedisFailureMode mode, int decided)
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
            Assert.Equal(mode != RedisFailureMode.Closed, outcomes[i].Outcome.IsAllowed);
        }

        if (mode == RedisFailureMode.Local)
        {
            // The local limits are in force, stage by stage: the edge's 2 per hour rejects the third request.
            await store.DecideStagesAsync(checks, ThreeStages, new StoreOutcome[3]);
            Assert.Equal(1, await store.DecideStagesAsync(checks, ThreeStages, outcomes));
            Assert.False(outcomes[0].Outcome.IsAllowed);
        }
    }
}
