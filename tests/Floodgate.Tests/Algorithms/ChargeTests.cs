using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Algorithms;

/// <summary>Always-charged checks: a cost charged past the limit (LimitMath.Settle of it) blocks until it refills.</summary>
public sealed class ChargeTests
{
    private const long Second = 1_000_000;
    private const long Minute = 60 * Second;
    private const long T0 = 28_333_333L * Minute;

    [Fact]
    public void A_fixed_window_charged_past_its_limit_denies_even_a_cost_of_zero_until_the_window_ends()
    {
        var limit = Limit.FixedWindow(Rate.Parse("3/min"));
        LimitMath.Decide(limit, default, T0, 2, out var state);
        var denied = LimitMath.Decide(limit, state, T0 + Second, 5, out _);
        Assert.False(denied.IsAllowed);
        state = LimitMath.Settle(limit, state, T0 + Second, 5);
        Assert.Equal(new LimitState(T0, 7, T0 + Minute), state);
        Assert.Equal(new LimitOutcome(false, 0, Minute - (2 * Second), Minute - (2 * Second)), LimitMath.Decide(limit, state, T0 + (2 * Second), 0, out _));
        Assert.True(LimitMath.Decide(limit, state, T0 + Minute, 3, out _).IsAllowed);
    }

    [Fact]
    public void A_cost_that_fits_is_settled_as_Decide_charges_it()
    {
        foreach (var limit in new[] { Limit.FixedWindow(Rate.Parse("3/min")), Limit.SlidingWindow(Rate.Parse("3/min")), Limit.Gcra(Rate.Parse("3/min")), Limit.Quota(Rate.Parse("3/min"), null) })
        {
            LimitMath.Decide(limit, default, T0, 1, out var state);
            Assert.True(LimitMath.Decide(limit, state, T0 + Second, 2, out var next).IsAllowed);
            Assert.Equal(next, LimitMath.Settle(limit, state, T0 + Second, 2));
        }
    }

    [Fact]
    public void A_sliding_window_and_a_quota_count_past_their_limit()
    {
        var sliding = Limit.SlidingWindow(Rate.Parse("4/min"));
        var state = LimitMath.Settle(sliding, default, T0 + Second, 6);
        Assert.Equal(new LimitState(T0, 0, 6), state);

        // Half a minute into the next window, half of the 6 still weigh: 3 + 2 > 4.
        Assert.False(LimitMath.Decide(sliding, state, T0 + Minute + (30 * Second), 2, out _).IsAllowed);
        Assert.True(LimitMath.Decide(sliding, state, T0 + Minute + (30 * Second), 1, out _).IsAllowed);

        var quota = Limit.Quota(Rate.Parse("10/h"), null);
        var spent = LimitMath.Settle(quota, default, T0, 25);
        Assert.Equal(new LimitState(T0, 25, T0 + (60 * Minute)), spent);
        Assert.False(LimitMath.Decide(quota, spent, T0 + Minute, 0, out _).IsAllowed);
    }

    [Fact]
    public void A_token_bucket_charged_past_its_burst_refills_for_as_long_as_it_was_overdrawn()
    {
        // 10 a second, burst 10: 25 charged at once leaves 15 owed, 1.5 s, before the bucket holds one token again.
        var limit = Limit.Gcra(Rate.Parse("10/s"));
        var state = LimitMath.Settle(limit, default, T0, 25);
        Assert.Equal(T0 + (25 * Second / 10), state.A);
        Assert.False(LimitMath.Decide(limit, state, T0 + (1500 * 1000) - 1, 0, out _).IsAllowed);
        Assert.True(LimitMath.Decide(limit, state, T0 + (1500 * 1000), 0, out _).IsAllowed);
        Assert.True(LimitMath.Decide(limit, state, T0 + (1600 * 1000), 1, out _).IsAllowed);
    }

    [Fact]
    public void Huge_charges_saturate_below_2_to_the_53()
    {
        Assert.Equal(Limit.MaxAmount, LimitMath.Settle(Limit.FixedWindow(Rate.Parse("3/min")), new LimitState(T0, 2, T0 + Minute), T0, long.MaxValue).B);
        Assert.Equal(Limit.MaxAmount, LimitMath.Settle(Limit.SlidingWindow(Rate.Parse("3/min")), default, T0, long.MaxValue).C);
        var year = Limit.Gcra(Rate.Parse("2/year"));
        Assert.Equal(T0 + (year.IntervalMicroseconds * LimitMath.MaxSettleUnits(year)), LimitMath.Settle(year, default, T0, long.MaxValue).A);
        Assert.Throws<ArgumentException>(() => LimitMath.Settle(Limit.Concurrency(2, TimeSpan.FromSeconds(1)), default, T0, 1));
    }

    [Fact]
    public void The_memory_store_charges_an_always_charged_check_even_when_it_or_its_identity_is_denied()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(T0 / 1000));
        var store = new MemoryStore(null, clock);
        var limit = Limit.FixedWindow(Rate.Parse("3/min"));
        var key = StoreKey.Create("budget", "alice");
        var outcomes = new StoreOutcome[2];

        // 5 does not fit in 3 but is charged: the key is over its limit, and a check of cost 0 says so.
        store.Decide([new RateLimitCheck(limit, key, 5, false) { IsAlwaysCharged = true }], outcomes);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[0].Committed);
        store.Decide([new RateLimitCheck(limit, key, 0, false)], outcomes);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal(0, outcomes[0].Outcome.Remaining);
        Assert.Equal(LimitMath.Decide(limit, new LimitState(T0, 5, T0 + Minute), T0, 0, out _), outcomes[0].Outcome);

        // A sibling of the same identity that fits is charged too when always charged, and not otherwise.
        var other = Limit.FixedWindow(Rate.Parse("10/min"));
        var charged = StoreKey.Create("charged", "alice");
        var plain = StoreKey.Create("plain", "alice");
        store.Decide([new RateLimitCheck(limit, key, 1, false) { IsAlwaysCharged = true }, new RateLimitCheck(other, charged, 1, false) { IsAlwaysCharged = true }], outcomes);
        Assert.Equal([false, true], outcomes.Select(o => o.Outcome.IsAllowed));
        Assert.Equal([true, true], outcomes.Select(o => o.Committed));
        store.Decide([new RateLimitCheck(limit, key, 1, false), new RateLimitCheck(other, plain, 1, false) { IsAlwaysCharged = false }], outcomes);
        Assert.Equal([false, false], outcomes.Select(o => o.Committed));
        store.Decide([new RateLimitCheck(other, charged, 0, false), new RateLimitCheck(other, plain, 0, false)], outcomes);
        Assert.Equal([9L, 10L], outcomes.Select(o => o.Outcome.Remaining));

        // A probe is never charged, always charged or not.
        store.Decide([new RateLimitCheck(other, plain, 20, false) { IsAlwaysCharged = true, IsProbe = true }], outcomes);
        Assert.False(outcomes[0].Committed);
        store.Decide([new RateLimitCheck(other, plain, 0, false)], outcomes);
        Assert.Equal(10L, outcomes[0].Outcome.Remaining);
    }
}
