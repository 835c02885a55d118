using FsCheck.Xunit;
using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Tests.Algorithms;

/// <summary>
/// The numbers a client is told, on every branch of every algorithm: remaining, reset and retry-after when a cost can
/// never fit, when it does not fit yet and when it fits; and that a retry-after is exact, the same cost being denied one
/// microsecond before it and admitted at it. Found missing by mutation testing (docs/testing.md): the verdicts were
/// tested, the numbers on some branches were not.
/// </summary>
public sealed class OutcomeNumbersTests
{
    private const long Second = 1_000_000;
    private const long T0 = 1_800_000_000L * Second; // a whole second, so window starts are easy to name

    [Fact]
    public void Gcra_tells_the_remaining_and_reset_of_a_cost_that_can_never_fit()
    {
        // 10/s, burst 3: 100 ms a request, 300 ms of tolerance; one request spent at T0.
        var limit = Limit.Gcra(Rate.Parse("10/s"), burst: 3);
        var state = new LimitState(T0 + 100_000, 0, 0);
        var outcome = LimitMath.Decide(limit, state, T0 + 50_000, 4, out var next);
        Assert.Equal(new LimitOutcome(false, 2, 50_000, LimitOutcome.Never), outcome);
        Assert.Equal(state, next);
    }

    [Fact]
    public void Gcra_tells_the_remaining_and_reset_of_a_cost_that_does_not_fit_yet()
    {
        // 10/s, burst 3, two spent at T0: one more fits now, two in 100 ms.
        var limit = Limit.Gcra(Rate.Parse("10/s"), burst: 3);
        var state = new LimitState(T0 + 200_000, 0, 0);
        Assert.Equal(new LimitOutcome(false, 1, 200_000, 100_000), LimitMath.Decide(limit, state, T0, 2, out var next));
        Assert.Equal(state, next);
        Assert.Equal(new LimitOutcome(true, 0, 300_000, 0), LimitMath.Decide(limit, state, T0, 1, out next));
        Assert.Equal(new LimitState(T0 + 300_000, 0, 0), next);
    }

    [Fact]
    public void Sliding_window_counts_only_the_previous_window_when_this_one_is_empty()
    {
        // 4/s; 4 spent in the window that started at T0, none yet in the next, a quarter of a second into it: they
        // weigh floor(4 × 0.75) = 3 and the limit is free again when the next window starts.
        var limit = Limit.SlidingWindow(Rate.Parse("4/s"));
        var state = new LimitState(T0, 0, 4);
        var now = T0 + Second + 250_000;
        Assert.Equal(new LimitOutcome(true, 1, 750_000, 0), LimitMath.Decide(limit, state, now, 0, out _));

        // A cost of 2 fits as soon as they weigh 2: one microsecond later, floor(4 × 0.749999).
        Assert.Equal(new LimitOutcome(false, 1, 750_000, 1), LimitMath.Decide(limit, state, now, 2, out var next));
        Assert.Equal(state, next);
        Assert.Equal(new LimitOutcome(true, 0, 1_749_999, 0), LimitMath.Decide(limit, state, now + 1, 2, out next));
        Assert.Equal(new LimitState(T0 + Second, 4, 2), next);
    }

    [Fact]
    public void Sliding_window_tells_the_remaining_and_reset_of_a_cost_that_can_never_fit()
    {
        // 4/s; halfway through the window, 2 in the previous one weigh 1, and 1 was spent in this one.
        var limit = Limit.SlidingWindow(Rate.Parse("4/s"));
        var state = new LimitState(T0, 2, 1);
        var outcome = LimitMath.Decide(limit, state, T0 + 500_000, 5, out var next);
        Assert.Equal(new LimitOutcome(false, 2, 1_500_000, LimitOutcome.Never), outcome);
        Assert.Equal(state, next);
    }

    [Theory]
    [InlineData(5L, LimitOutcome.Never)] // more than the amount
    [InlineData(1L, 650_001L)] // fits once the previous window's 4 weigh 0: floor(4 × 0.249999), 0.750001 s in
    public void Sliding_window_never_tells_a_negative_remaining(long cost, long retryAfter)
    {
        // 4/s; 0.1 s into the window the previous window's 4 weigh floor(3.6) = 3, and 3 were spent in this one: 6 > 4.
        var limit = Limit.SlidingWindow(Rate.Parse("4/s"));
        var outcome = LimitMath.Decide(limit, new LimitState(T0, 4, 3), T0 + 100_000, cost, out _);
        Assert.Equal(new LimitOutcome(false, 0, 1_900_000, retryAfter), outcome);
    }

    [Fact]
    public void Counters_tell_remaining_reset_and_retry_on_every_branch()
    {
        // fixed_window 5/s, 3 spent in the window that started at T0, a quarter of a second in.
        var limit = Limit.FixedWindow(Rate.Parse("5/s"));
        var state = new LimitState(T0, 3, T0 + Second);
        var now = T0 + 250_000;

        Assert.Equal(new LimitOutcome(false, 2, 750_000, LimitOutcome.Never), LimitMath.Decide(limit, state, now, 6, out var next));
        Assert.Equal(state, next);
        Assert.Equal(new LimitOutcome(false, 2, 750_000, 750_000), LimitMath.Decide(limit, state, now, 3, out next));
        Assert.Equal(state, next);
        Assert.Equal(new LimitOutcome(true, 0, 750_000, 0), LimitMath.Decide(limit, state, now, 2, out next));
        Assert.Equal(new LimitState(T0, 5, T0 + Second), next);

        // A rolling quota, 10 per hour, its period started at T0 with 4 spent: the same numbers from the same counter.
        var quota = Limit.Quota(Rate.Parse("10/h"), null);
        var period = new LimitState(T0, 4, T0 + (3_600 * Second));
        now = T0 + (600 * Second);
        var left = (3_000 * Second);
        Assert.Equal(new LimitOutcome(false, 6, left, LimitOutcome.Never), LimitMath.Decide(quota, period, now, 11, out _));
        Assert.Equal(new LimitOutcome(false, 6, left, left), LimitMath.Decide(quota, period, now, 7, out _));
        Assert.Equal(new LimitOutcome(true, 0, left, 0), LimitMath.Decide(quota, period, now, 6, out next));
        Assert.Equal(new LimitState(T0, 10, T0 + (3_600 * Second)), next);
    }

    [Fact]
    public void Concurrency_tells_the_reset_of_an_admitted_lease_and_clamps_the_retry()
    {
        var limit = Limit.Concurrency(3, TimeSpan.FromSeconds(2));
        var now = T0;

        // One lease held, expiring in 0.5 s: a new lease resets with its own timeout, a probe with the lease held.
        Assert.Equal(new LimitOutcome(true, 1, 2 * Second, 0), LimitMath.Concurrency(limit, 1, now + 500_000, now + 500_000, now, 1));
        Assert.Equal(new LimitOutcome(true, 2, 500_000, 0), LimitMath.Concurrency(limit, 1, now + 500_000, now + 500_000, now, 0));

        // A lease held longer than the timeout (the limit was changed since) keeps the reset.
        Assert.Equal(new LimitOutcome(true, 1, 5 * Second, 0), LimitMath.Concurrency(limit, 1, now + (5 * Second), now + (5 * Second), now, 1));

        // Full: retry when the earliest lease expires, but at least 1 µs and at most a second.
        Assert.Equal(new LimitOutcome(false, 0, 1_500_000, 200_000), LimitMath.Concurrency(limit, 3, now + 200_000, now + 1_500_000, now, 1));
        Assert.Equal(1, LimitMath.Concurrency(limit, 3, now, now + 1_500_000, now, 1).RetryAfterMicroseconds);
        Assert.Equal(Second, LimitMath.Concurrency(limit, 3, now + (3 * Second), now + (4 * Second), now, 1).RetryAfterMicroseconds);

        // More permits in flight than the limit (it was lowered): remaining is 0, never negative.
        Assert.Equal(new LimitOutcome(false, 0, Second, 500_000), LimitMath.Concurrency(limit, 5, now + 500_000, now + Second, now, 1));
        Assert.Equal(new LimitOutcome(false, 0, Second, LimitOutcome.Never), LimitMath.Concurrency(limit, 5, now + 500_000, now + Second, now, 4));
    }

    [Fact]
    public void Decisions_refuse_a_missing_limit()
    {
        Assert.Throws<ArgumentNullException>(() => LimitMath.Decide(null!, default, T0, 1, out _));
        Assert.Throws<ArgumentNullException>(() => LimitMath.ExpiresAt(null!, default));
        Assert.Throws<ArgumentNullException>(() => LimitMath.Concurrency(null!, 0, 0, 0, T0, 1));
    }

    [Fact]
    public void A_state_expires_when_it_becomes_the_same_as_no_state()
    {
        var state = new LimitState(T0, 3, T0 + 7);
        Assert.Equal(T0, LimitMath.ExpiresAt(Limit.Gcra(Rate.Parse("10/s")), state));
        Assert.Equal(T0 + (60 * Second), LimitMath.ExpiresAt(Limit.FixedWindow(Rate.Parse("5/min")), state));
        Assert.Equal(T0 + (120 * Second), LimitMath.ExpiresAt(Limit.SlidingWindow(Rate.Parse("5/min")), state));
        Assert.Equal(T0 + 7, LimitMath.ExpiresAt(Limit.Quota(Rate.Parse("5/h"), null), state));
        Assert.Throws<ArgumentException>(() => LimitMath.ExpiresAt(Limit.Concurrency(1), state));
    }

    /// <summary>
    /// The retry-after of every finite denial is exact: the same cost on the same state is denied one microsecond
    /// before it and admitted at it. A sequence of random requests, jumping now and then to a denial's retry-after.
    /// </summary>
    [Property(MaxTest = 200)]
    public bool Every_retry_after_is_exact(byte algorithmSeed, byte amountSeed, int seed)
    {
        var amount = 1 + (amountSeed % 9);
        var limit = (algorithmSeed % 6) switch
        {
            0 => Limit.Gcra(new Rate(amount, 1, RateUnit.Second)),
            1 => Limit.Gcra(new Rate(amount, 3, RateUnit.Second), 1 + (amountSeed % 3)),
            2 => Limit.SlidingWindow(new Rate(amount, 1, RateUnit.Second)),
            3 => Limit.FixedWindow(new Rate(amount, 1, RateUnit.Second)),
            4 => Limit.Quota(new Rate(amount, 1, RateUnit.Minute), null),
            _ => Limit.Quota(new Rate(amount, 1, RateUnit.Day), QuotaCalendar.ForTimeZone("Europe/Paris")),
        };
        var random = new Random(seed);
        var state = default(LimitState);
        var now = T0 + random.NextInt64(Second);
        var denials = 0;
        for (var step = 0; step < 60; step++)
        {
            var cost = 1 + random.Next(Math.Min(3, (int)limit.Burst));
            var outcome = LimitMath.Decide(limit, state, now, cost, out var next);
            if (outcome.IsAllowed)
            {
                state = next;
                now += random.Next(3) == 0 ? random.NextInt64(limit.PeriodMicroseconds / amount) : 0;
                continue;
            }

            var retry = outcome.RetryAfterMicroseconds;
            if (retry <= 0
                || LimitMath.Decide(limit, state, now + retry - 1, cost, out _).IsAllowed
                || !LimitMath.Decide(limit, state, now + retry, cost, out _).IsAllowed)
            {
                return false;
            }

            denials++;
            now += retry + (random.Next(2) == 0 ? 0 : random.NextInt64(limit.PeriodMicroseconds));
        }

        return denials > 0;
    }
}
