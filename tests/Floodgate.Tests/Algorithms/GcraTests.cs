using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Tests.Algorithms;

public sealed class GcraTests
{
    private const long Second = 1_000_000;
    private const long T0 = 1_700_000_000L * Second;

    [Fact]
    public void Burst_is_spent_at_once_then_refills_one_interval_at_a_time()
    {
        var limit = Limit.Gcra(Rate.Parse("10/s"), burst: 3);
        var state = default(LimitState);
        for (var i = 0; i < 3; i++)
        {
            var outcome = LimitMath.Decide(limit, state, T0, 1, out state);
            Assert.True(outcome.IsAllowed);
            Assert.Equal(2 - i, outcome.Remaining);
        }

        var denied = LimitMath.Decide(limit, state, T0, 1, out var unchanged);
        Assert.False(denied.IsAllowed);
        Assert.Equal(state, unchanged);
        Assert.Equal(0, denied.Remaining);
        Assert.Equal(Second / 10, denied.RetryAfterMicroseconds);
        Assert.Equal(3 * Second / 10, denied.ResetAfterMicroseconds);

        var later = LimitMath.Decide(limit, state, T0 + (Second / 10), 1, out _);
        Assert.True(later.IsAllowed);
        Assert.Equal(0, later.Remaining);
    }

    [Fact]
    public void Default_burst_is_the_amount()
    {
        var limit = Limit.Gcra(Rate.Parse("300/min"));
        Assert.Equal(300, limit.Burst);
        var state = default(LimitState);
        for (var i = 0; i < 300; i++)
        {
            Assert.True(LimitMath.Decide(limit, state, T0, 1, out state).IsAllowed);
        }

        var denied = LimitMath.Decide(limit, state, T0, 1, out _);
        Assert.False(denied.IsAllowed);
        Assert.Equal(200_000, denied.RetryAfterMicroseconds);
    }

    [Fact]
    public void Steady_rate_at_the_interval_is_always_admitted()
    {
        var limit = Limit.Gcra(Rate.Parse("5/s"), burst: 1);
        var state = default(LimitState);
        for (var i = 0; i < 100; i++)
        {
            Assert.True(LimitMath.Decide(limit, state, T0 + (i * 200_000), 1, out state).IsAllowed);
        }

        Assert.False(LimitMath.Decide(limit, state, T0 + (99 * 200_000) + 199_999, 1, out _).IsAllowed);
    }

    [Fact]
    public void Cost_above_one_spends_that_many_intervals()
    {
        var limit = Limit.Gcra(Rate.Parse("10/s"));
        var outcome = LimitMath.Decide(limit, default, T0, 4, out var state);
        Assert.True(outcome.IsAllowed);
        Assert.Equal(6, outcome.Remaining);
        Assert.Equal(T0 + 400_000, state.A);

        var tooMuch = LimitMath.Decide(limit, state, T0, 7, out _);
        Assert.False(tooMuch.IsAllowed);
        Assert.Equal(100_000, tooMuch.RetryAfterMicroseconds);
    }

    [Fact]
    public void Cost_zero_reads_and_consumes_nothing()
    {
        var limit = Limit.Gcra(Rate.Parse("10/s"));
        LimitMath.Decide(limit, default, T0, 4, out var state);
        var probe = LimitMath.Decide(limit, state, T0, 0, out var after);
        Assert.True(probe.IsAllowed);
        Assert.Equal(6, probe.Remaining);
        Assert.Equal(state, after);
    }

    [Fact]
    public void Cost_above_the_burst_can_never_fit()
    {
        var limit = Limit.Gcra(Rate.Parse("10/s"), burst: 5);
        var outcome = LimitMath.Decide(limit, default, T0, 6, out var state);
        Assert.False(outcome.IsAllowed);
        Assert.Equal(LimitOutcome.Never, outcome.RetryAfterMicroseconds);
        Assert.Equal(default, state);
    }
}
