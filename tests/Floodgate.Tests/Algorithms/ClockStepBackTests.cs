using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Tests.Algorithms;

/// <summary>A clock that steps back (NTP, a restored VM, a late-published cached time) must not give a budget back.</summary>
public sealed class ClockStepBackTests
{
    private const long Second = 1_000_000;
    private const long T = 1_700_000_000L * Second;

    private static long At(string utc) => (DateTimeOffset.Parse(utc, System.Globalization.CultureInfo.InvariantCulture).UtcTicks - DateTime.UnixEpoch.Ticks) / 10;

    // 20 requests at each of four instants within 1.2 ms around a window boundary, the third stepped back 0.6 ms.
    private static int AdmittedAcrossAStepBack(Limit limit)
    {
        var state = default(LimitState);
        var admitted = 0;
        foreach (var now in new[] { T + 999_000, T + 1_000_100, T + 999_500, T + 1_000_200 })
        {
            for (var i = 0; i < 20; i++)
            {
                admitted += LimitMath.Decide(limit, state, now, 1, out state).IsAllowed ? 1 : 0;
            }
        }

        return admitted;
    }

    [Fact]
    public void A_fixed_window_does_not_reopen_the_window_the_clock_stepped_back_into()
    {
        // 10 before the boundary and 10 after it; stepping back must not open the earlier window a second time.
        Assert.Equal(20, AdmittedAcrossAStepBack(Limit.FixedWindow(Rate.Parse("10/s"))));
    }

    [Fact]
    public void A_sliding_window_does_not_forget_the_window_the_clock_stepped_back_from()
    {
        // 10 before the boundary, and 1 just after it, where the previous window weighs floor(10 × 0.9999) = 9.
        Assert.Equal(11, AdmittedAcrossAStepBack(Limit.SlidingWindow(Rate.Parse("10/s"))));
    }

    [Fact]
    public void A_gcra_does_not_refill_when_the_clock_steps_back()
    {
        Assert.Equal(10, AdmittedAcrossAStepBack(Limit.Gcra(Rate.Parse("10/s"))));
    }

    [Fact]
    public void A_rolling_quota_keeps_a_period_that_starts_after_now()
    {
        var limit = Limit.Quota(Rate.Parse("3/h"), null);
        var state = default(LimitState);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(LimitMath.Decide(limit, state, T, 1, out state).IsAllowed);
        }

        // The clock steps back a second: the period began "in the future", and it is still spent.
        var stepped = LimitMath.Decide(limit, state, T - Second, 1, out var unchanged);
        Assert.False(stepped.IsAllowed);
        Assert.Equal(state, unchanged);
        Assert.Equal(3600 * Second + Second, stepped.ResetAfterMicroseconds);
    }

    [Fact]
    public void A_calendar_quota_keeps_the_later_day_when_the_clock_steps_back_over_midnight()
    {
        var limit = Limit.Quota(Rate.Parse("2/day"), QuotaCalendar.Utc);
        var state = default(LimitState);
        Assert.True(LimitMath.Decide(limit, state, At("2026-01-15T23:59:59.9995Z"), 1, out state).IsAllowed);
        Assert.True(LimitMath.Decide(limit, state, At("2026-01-16T00:00:00.0001Z"), 1, out state).IsAllowed);
        Assert.True(LimitMath.Decide(limit, state, At("2026-01-16T00:00:00.0002Z"), 1, out state).IsAllowed);

        // Back 0.6 ms into the 15th, whose count was overwritten by the 16th's: the 16th stays in force and is spent.
        Assert.False(LimitMath.Decide(limit, state, At("2026-01-15T23:59:59.9996Z"), 1, out _).IsAllowed);
    }
}
