using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Algorithms;

/// <summary>
/// Settlement per algorithm, on the memory store and a fake clock: a reservation is refunded when the request cost less,
/// charged more when it cost more; an extra charge may overdraw the key, which then denies everything until it refills.
/// </summary>
public sealed class SettleTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 2, 12, 0, 0, TimeSpan.Zero);
    private const long Second = 1_000_000;

    public static TheoryData<string> Algorithms() => ["gcra", "fixed_window", "sliding_window", "quota_rolling", "quota_calendar"];

    private static Limit LimitOf(string algorithm) => algorithm switch
    {
        "gcra" => Limit.Gcra(Rate.Parse("100/min")),
        "fixed_window" => Limit.FixedWindow(Rate.Parse("100/min")),
        "sliding_window" => Limit.SlidingWindow(Rate.Parse("100/min")),
        "quota_rolling" => Limit.Quota(Rate.Parse("100/min"), null),
        _ => Limit.Quota(Rate.Parse("100/day"), QuotaCalendar.Utc),
    };

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async Task A_refund_gives_back_what_the_request_did_not_use(string algorithm)
    {
        var (store, check) = Make(algorithm);
        Assert.True(Decide(store, check with { Cost = 80 }).Committed);
        Assert.Equal(20, Decide(store, check with { Cost = 0 }).Outcome.Remaining);

        // It cost 30: 50 come back.
        Assert.Equal(CostSettlement.Settled, await store.SettleAsync(check, 30 - 80));
        Assert.Equal(70, Decide(store, check with { Cost = 0 }).Outcome.Remaining);
        Assert.True(Decide(store, check with { Cost = 70 }).Committed);
        Assert.False(Decide(store, check).Outcome.IsAllowed);
    }

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async Task A_refund_never_gives_back_more_than_the_key_holds(string algorithm)
    {
        var (store, check) = Make(algorithm);
        Assert.True(Decide(store, check with { Cost = 10 }).Committed);
        await store.SettleAsync(check, -1_000);
        Assert.Equal(100, Decide(store, check with { Cost = 0 }).Outcome.Remaining);
        Assert.True(Decide(store, check with { Cost = 100 }).Committed);
        Assert.False(Decide(store, check).Outcome.IsAllowed);
    }

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async Task An_extra_charge_may_overdraw_and_then_blocks_until_the_key_refills(string algorithm)
    {
        var (store, check) = Make(algorithm, out var clock);
        var limit = check.Limit;
        Assert.True(Decide(store, check with { Cost = 50 }).Committed);

        // It cost 130: 80 more, 30 past the budget.
        Assert.Equal(CostSettlement.Settled, await store.SettleAsync(check, 130 - 50));
        var probe = Decide(store, check with { Cost = 0 });
        Assert.False(probe.Outcome.IsAllowed);
        Assert.Equal(0, probe.Outcome.Remaining);
        var denied = Decide(store, check);
        Assert.False(denied.Outcome.IsAllowed);
        Assert.True(denied.Outcome.RetryAfterMicroseconds > 0);

        if (limit.Algorithm == LimitAlgorithm.Gcra)
        {
            // 130 units spent of a burst of 100: one more fits after 31 intervals of 0.6 s.
            Assert.Equal(31 * limit.IntervalMicroseconds, denied.Outcome.RetryAfterMicroseconds);
            clock.Advance(TimeSpan.FromMicroseconds(denied.Outcome.RetryAfterMicroseconds - 1));
            Assert.False(Decide(store, check).Outcome.IsAllowed);
            clock.Advance(TimeSpan.FromMicroseconds(1));
            Assert.True(Decide(store, check).Committed);
        }
        else
        {
            // A counter stays overdrawn until its window or period ends.
            clock.Advance(TimeSpan.FromMicroseconds(denied.Outcome.RetryAfterMicroseconds));
            Assert.True(Decide(store, check).Committed);
        }
    }

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async Task An_extra_charge_without_a_reservation_is_charged_in_full(string algorithm)
    {
        var (store, check) = Make(algorithm);
        await store.SettleAsync(check, 40);
        Assert.Equal(60, Decide(store, check with { Cost = 0 }).Outcome.Remaining);
    }

    [Theory]
    [InlineData("fixed_window")]
    [InlineData("quota_rolling")]
    public async Task A_refund_after_the_window_ended_has_nothing_left_to_refund(string algorithm)
    {
        var (store, check) = Make(algorithm, out var clock);
        Assert.True(Decide(store, check with { Cost = 90 }).Committed);
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.True(Decide(store, check with { Cost = 30 }).Committed);

        // The 90 were the last window's: the new window's count goes to 0 at most, never below.
        await store.SettleAsync(check, -90);
        Assert.Equal(100, Decide(store, check with { Cost = 0 }).Outcome.Remaining);
    }

    [Fact]
    public void Gcra_settlement_is_a_shift_of_the_arrival_time_by_whole_intervals()
    {
        var limit = Limit.Gcra(Rate.Parse("10/s"), burst: 5);
        var now = 1_700_000_000L * Second;
        var state = new LimitState(now + (3 * limit.IntervalMicroseconds), 0, 0);
        Assert.Equal(new LimitState(now + (5 * limit.IntervalMicroseconds), 0, 0), LimitMath.Settle(limit, state, now, 2));
        Assert.Equal(new LimitState(now + limit.IntervalMicroseconds, 0, 0), LimitMath.Settle(limit, state, now, -2));
        Assert.Equal(new LimitState(now, 0, 0), LimitMath.Settle(limit, state, now, -4));

        // An arrival time in the past counts from now, as a decision does.
        Assert.Equal(new LimitState(now + (2 * limit.IntervalMicroseconds), 0, 0), LimitMath.Settle(limit, new LimitState(now - Second, 0, 0), now, 2));
        Assert.Equal(state, LimitMath.Settle(limit, state, now, 0));
    }

    [Fact]
    public void Huge_extra_charges_stay_within_the_exact_range()
    {
        var now = 1_700_000_000L * Second;
        var gcra = Limit.Gcra(Rate.Parse("1/s"), burst: 1);
        var settled = LimitMath.Settle(gcra, default, now, long.MaxValue);
        // Whole intervals only: the most units one settlement moves, each one interval.
        Assert.Equal(now + (LimitMath.MaxSettleUnits(gcra) * gcra.IntervalMicroseconds), settled.A);
        Assert.True(settled.A > now + LimitMath.MaxSettleSpanMicroseconds - gcra.IntervalMicroseconds);
        settled = LimitMath.Settle(gcra, settled, now, long.MaxValue);
        Assert.Equal(now + (2 * LimitMath.MaxSettleUnits(gcra) * gcra.IntervalMicroseconds), settled.A);

        // Never past now plus the longest span, however many extra charges pile up.
        Assert.Equal(now + Limit.MaxSpanMicroseconds, LimitMath.Settle(gcra, settled, now, long.MaxValue).A);
        Assert.Equal(LimitMath.MaxSettleSpanMicroseconds / gcra.IntervalMicroseconds, LimitMath.MaxSettleUnits(gcra));

        var window = Limit.FixedWindow(Rate.Parse("5/s"));
        Assert.Equal(Limit.MaxAmount, LimitMath.Settle(window, LimitMath.Settle(window, default, now, long.MaxValue), now, long.MaxValue).B);
        Assert.Equal(0, LimitMath.Settle(window, new LimitState(now, 3, now + Second), now, long.MinValue).B);
        Assert.Equal(Limit.MaxAmount, LimitMath.MaxSettleUnits(window));
    }

    [Fact]
    public void A_sliding_window_settles_its_current_window_only()
    {
        var limit = Limit.SlidingWindow(Rate.Parse("10/s"));
        var now = 1_700_000_000L * Second;
        var start = now - (now % Second);
        Assert.Equal(new LimitState(start, 4, 1), LimitMath.Settle(limit, new LimitState(start, 4, 3), now, -2));
        Assert.Equal(new LimitState(start, 4, 0), LimitMath.Settle(limit, new LimitState(start, 4, 3), now, -5));

        // The state's window just ended: its count becomes the previous one, and a refund finds nothing current.
        Assert.Equal(new LimitState(start, 3, 0), LimitMath.Settle(limit, new LimitState(start - Second, 4, 3), now, -2));
        Assert.Equal(new LimitState(start, 0, 2), LimitMath.Settle(limit, new LimitState(start - (2 * Second), 4, 3), now, 2));
    }

    [Fact]
    public async Task Concurrency_is_not_settled()
    {
        var store = new MemoryStore();
        var check = new RateLimitCheck(Limit.Concurrency(3), StoreKey.Create("c", "alice"), 1, false);
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.SettleAsync(check, 1));
        Assert.Throws<ArgumentException>(() => LimitMath.Settle(check.Limit, default, 0, 1));
    }

    private static (MemoryStore Store, RateLimitCheck Check) Make(string algorithm) => Make(algorithm, out _);

    private static (MemoryStore Store, RateLimitCheck Check) Make(string algorithm, out FakeTimeProvider clock)
    {
        clock = new FakeTimeProvider(Start);
        return (new MemoryStore(timeProvider: clock), new RateLimitCheck(LimitOf(algorithm), StoreKey.Create("settle", "alice"), 1, false));
    }

    private static StoreOutcome Decide(MemoryStore store, RateLimitCheck check)
    {
        var outcomes = new StoreOutcome[1];
        store.Decide([check], outcomes);
        return outcomes[0];
    }
}
