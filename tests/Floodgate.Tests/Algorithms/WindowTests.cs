using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Tests.Algorithms;

public sealed class WindowTests
{
    private const long Second = 1_000_000;
    private const long Minute = 60 * Second;

    // An instant aligned to a minute, so window arithmetic in the tests is easy to read.
    private const long T0 = 28_333_333L * Minute;

    [Fact]
    public void Fixed_window_counts_until_the_window_ends()
    {
        var limit = Limit.FixedWindow(Rate.Parse("3/min"));
        var state = default(LimitState);
        var first = LimitMath.Decide(limit, state, T0 + (10 * Second), 1, out state);
        Assert.Equal(new LimitOutcome(true, 2, 50 * Second, 0), first);
        LimitMath.Decide(limit, state, T0 + (20 * Second), 1, out state);
        LimitMath.Decide(limit, state, T0 + (30 * Second), 1, out state);
        var denied = LimitMath.Decide(limit, state, T0 + (40 * Second), 1, out var unchanged);
        Assert.Equal(new LimitOutcome(false, 0, 20 * Second, 20 * Second), denied);
        Assert.Equal(state, unchanged);

        var nextWindow = LimitMath.Decide(limit, state, T0 + Minute, 1, out state);
        Assert.Equal(new LimitOutcome(true, 2, Minute, 0), nextWindow);
    }

    [Fact]
    public void Fixed_window_boundary_is_exact_to_the_microsecond()
    {
        var limit = Limit.FixedWindow(Rate.Parse("1/s"));
        LimitMath.Decide(limit, default, T0 + Second - 1, 1, out var state);
        Assert.False(LimitMath.Decide(limit, state, T0 + Second - 1, 1, out _).IsAllowed);
        Assert.True(LimitMath.Decide(limit, state, T0 + Second, 1, out _).IsAllowed);
    }

    [Fact]
    public void Fixed_window_cost_and_probe()
    {
        var limit = Limit.FixedWindow(Rate.Parse("10/min"));
        var spend = LimitMath.Decide(limit, default, T0, 7, out var state);
        Assert.Equal(3, spend.Remaining);
        Assert.False(LimitMath.Decide(limit, state, T0, 4, out _).IsAllowed);
        var probe = LimitMath.Decide(limit, state, T0, 0, out var after);
        Assert.Equal(new LimitOutcome(true, 3, Minute, 0), probe);
        Assert.Equal(state, after);
        Assert.Equal(LimitOutcome.Never, LimitMath.Decide(limit, state, T0, 11, out _).RetryAfterMicroseconds);
    }

    [Fact]
    public void Sliding_window_weighs_the_previous_window_by_its_overlap()
    {
        var limit = Limit.SlidingWindow(Rate.Parse("10/min"));
        var state = default(LimitState);
        for (var i = 0; i < 10; i++)
        {
            Assert.True(LimitMath.Decide(limit, state, T0 + (30 * Second), 1, out state).IsAllowed);
        }

        // 15 s into the next window, 45 s of the sliding minute still overlap the previous one: floor(10 × 0.75) = 7.
        var quarter = LimitMath.Decide(limit, state, T0 + Minute + (15 * Second), 1, out state);
        Assert.Equal(new LimitOutcome(true, 2, (2 * Minute) - (15 * Second), 0), quarter);
        LimitMath.Decide(limit, state, T0 + Minute + (15 * Second), 1, out state);
        LimitMath.Decide(limit, state, T0 + Minute + (15 * Second), 1, out state);
        var denied = LimitMath.Decide(limit, state, T0 + Minute + (15 * Second), 1, out _);
        Assert.False(denied.IsAllowed);
        Assert.Equal(0, denied.Remaining);

        // The previous window must decay to 6: floor(10 × (60 s − e) / 60 s) ≤ 6 first holds 1 µs after e = 18 s.
        Assert.Equal((3 * Second) + 1, denied.RetryAfterMicroseconds);
        Assert.True(LimitMath.Decide(limit, state, T0 + Minute + (18 * Second) + 1, 1, out _).IsAllowed);
        Assert.False(LimitMath.Decide(limit, state, T0 + Minute + (18 * Second), 1, out _).IsAllowed);
    }

    [Fact]
    public void Sliding_window_retry_when_the_current_window_is_full()
    {
        var limit = Limit.SlidingWindow(Rate.Parse("4/min"));
        var state = default(LimitState);
        for (var i = 0; i < 4; i++)
        {
            LimitMath.Decide(limit, state, T0 + (50 * Second), 1, out state);
        }

        var denied = LimitMath.Decide(limit, state, T0 + (50 * Second), 1, out _);
        Assert.False(denied.IsAllowed);

        // The current window is full, so only the next one can admit: there the 4 decay below 4 one microsecond in.
        Assert.Equal((10 * Second) + 1, denied.RetryAfterMicroseconds);
        Assert.True(LimitMath.Decide(limit, state, T0 + Minute + 1, 1, out _).IsAllowed);
        Assert.False(LimitMath.Decide(limit, state, T0 + Minute, 1, out _).IsAllowed);
    }

    [Fact]
    public void Sliding_window_forgets_after_two_windows()
    {
        var limit = Limit.SlidingWindow(Rate.Parse("2/min"));
        var state = default(LimitState);
        LimitMath.Decide(limit, state, T0, 2, out state);
        Assert.Equal(T0 + (2 * Minute), LimitMath.ExpiresAt(limit, state));
        var fresh = LimitMath.Decide(limit, state, T0 + (2 * Minute), 2, out _);
        Assert.Equal(new LimitOutcome(true, 0, 2 * Minute, 0), fresh);
    }

    [Fact]
    public void Sliding_window_probe_and_oversized_cost()
    {
        var limit = Limit.SlidingWindow(Rate.Parse("5/min"));
        LimitMath.Decide(limit, default, T0, 3, out var state);
        var probe = LimitMath.Decide(limit, state, T0, 0, out var after);
        Assert.True(probe.IsAllowed);
        Assert.Equal(2, probe.Remaining);
        Assert.Equal(state, after);
        Assert.Equal(LimitOutcome.Never, LimitMath.Decide(limit, state, T0, 6, out _).RetryAfterMicroseconds);
    }
}
