using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Tests.Algorithms;

public sealed class QuotaTests
{
    private const long Second = 1_000_000;
    private const long Hour = 3600 * Second;

    private static long At(string utc) => (DateTimeOffset.Parse(utc, System.Globalization.CultureInfo.InvariantCulture).UtcTicks - DateTime.UnixEpoch.Ticks) / 10;

    [Fact]
    public void Daily_quota_rolls_over_at_local_midnight_of_its_time_zone()
    {
        // Europe/Paris is UTC+1 in January: its day starts at 23:00 UTC.
        var limit = Limit.Quota(Rate.Parse("2/day"), QuotaCalendar.ForTimeZone("Europe/Paris"));
        var state = default(LimitState);
        var first = LimitMath.Decide(limit, state, At("2026-01-15T22:30:00Z"), 1, out state);
        Assert.Equal(new LimitOutcome(true, 1, 30 * 60 * Second, 0), first);
        LimitMath.Decide(limit, state, At("2026-01-15T22:40:00Z"), 1, out state);
        var denied = LimitMath.Decide(limit, state, At("2026-01-15T22:59:59Z"), 1, out _);
        Assert.False(denied.IsAllowed);
        Assert.Equal(Second, denied.RetryAfterMicroseconds);

        var nextDay = LimitMath.Decide(limit, state, At("2026-01-15T23:00:00Z"), 1, out state);
        Assert.Equal(new LimitOutcome(true, 1, 24 * Hour, 0), nextDay);
    }

    [Fact]
    public void Daily_quota_follows_daylight_saving_days_of_23_hours()
    {
        // Europe/Paris springs forward on 2026-03-29: that local day lasts 23 hours.
        var limit = Limit.Quota(Rate.Parse("5/day"), QuotaCalendar.ForTimeZone("Europe/Paris"));
        var outcome = LimitMath.Decide(limit, default, At("2026-03-28T23:00:00Z"), 1, out _);
        Assert.Equal(23 * Hour, outcome.ResetAfterMicroseconds);
    }

    [Fact]
    public void Monthly_quota_rolls_over_at_the_month_end()
    {
        var limit = Limit.Quota(Rate.Parse("3/month"), QuotaCalendar.Utc);
        var state = default(LimitState);
        var jan31 = LimitMath.Decide(limit, state, At("2026-01-31T23:59:59Z"), 3, out state);
        Assert.Equal(new LimitOutcome(true, 0, Second, 0), jan31);
        Assert.False(LimitMath.Decide(limit, state, At("2026-01-31T23:59:59.999999Z"), 1, out _).IsAllowed);

        var feb1 = LimitMath.Decide(limit, state, At("2026-02-01T00:00:00Z"), 1, out state);
        Assert.True(feb1.IsAllowed);
        Assert.Equal(2, feb1.Remaining);
        Assert.Equal(28 * 24 * Hour, feb1.ResetAfterMicroseconds);
    }

    [Fact]
    public void Weekly_quota_starts_on_monday()
    {
        var limit = Limit.Quota(Rate.Parse("1/week"), QuotaCalendar.Utc);

        // 2026-01-14 is a Wednesday; the week ends on Monday 2026-01-19.
        var outcome = LimitMath.Decide(limit, default, At("2026-01-14T12:00:00Z"), 1, out _);
        Assert.Equal(At("2026-01-19T00:00:00Z") - At("2026-01-14T12:00:00Z"), outcome.ResetAfterMicroseconds);
    }

    [Fact]
    public void The_current_and_the_next_period_are_both_cached()
    {
        // The Redis store asks for the current period and the next on every decision, by one calendar per time zone.
        var paris = QuotaCalendar.ForTimeZone("Europe/Paris");
        var daily = Limit.Quota(Rate.Parse("5/day"), paris);
        var monthly = Limit.Quota(Rate.Parse("500/month"), paris);
        var now = At("2026-03-28T20:00:00Z");
        var (_, dayEnd) = daily.CalendarPeriod(now);
        var (_, monthEnd) = monthly.CalendarPeriod(now);

        // The next day is the 23-hour day of the change to summer time; the cached next periods match fresh ones.
        var fresh = new QuotaCalendar(paris.TimeZone);
        Assert.Equal(fresh.PeriodContaining(dayEnd, RateUnit.Day), daily.CalendarPeriod(dayEnd));
        Assert.Equal(23 * Hour, daily.CalendarPeriod(dayEnd).End - dayEnd);
        Assert.Equal(fresh.PeriodContaining(monthEnd, RateUnit.Month), monthly.CalendarPeriod(monthEnd));

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            daily.CalendarPeriod(now);
            daily.CalendarPeriod(dayEnd);
            monthly.CalendarPeriod(now);
            monthly.CalendarPeriod(monthEnd);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Rolling_quota_starts_with_the_first_request()
    {
        var limit = Limit.Quota(Rate.Parse("2/30d"), calendar: null);
        var start = At("2026-01-10T08:00:00Z");
        var state = default(LimitState);
        LimitMath.Decide(limit, state, start, 1, out state);
        LimitMath.Decide(limit, state, start + Hour, 1, out state);
        var denied = LimitMath.Decide(limit, state, start + (29 * 24 * Hour), 1, out _);
        Assert.False(denied.IsAllowed);
        Assert.Equal(24 * Hour, denied.RetryAfterMicroseconds);

        var renewed = LimitMath.Decide(limit, state, start + (30 * 24 * Hour), 1, out state);
        Assert.True(renewed.IsAllowed);
        Assert.Equal(30 * 24 * Hour, renewed.ResetAfterMicroseconds);
    }
}
