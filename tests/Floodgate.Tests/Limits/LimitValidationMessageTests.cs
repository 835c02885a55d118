using Floodgate.Limits;

namespace Floodgate.Tests.Limits;

/// <summary>
/// What a refused limit or rate says (the text a policy author reads, through the gateway's policy errors), the limits
/// a store builds without checks, and the units rates are written in. Found missing by mutation testing
/// (docs/testing.md).
/// </summary>
public sealed class LimitValidationMessageTests
{
    [Fact]
    public void A_gcra_burst_below_one_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => Limit.Gcra(Rate.Parse("10/s"), 0));
        Assert.Equal("burst", error.ParamName);
        Assert.StartsWith("The burst of 10/s must be at least 1, not 0.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gcra_says_why_it_refuses_a_rate()
    {
        var tooFast = Assert.Throws<ArgumentException>(() => Limit.Gcra(Rate.Parse("2000000/s")));
        Assert.StartsWith("The rate 2000000/s is above one per microsecond", tooFast.Message, StringComparison.Ordinal);

        // 600k/s: an interval of 1.667 µs rounds up to 2 µs, which admits 500k/s.
        var tooFine = Assert.Throws<ArgumentException>(() => Limit.Gcra(Rate.Parse("600k/s")));
        Assert.Contains("its interval of 1.667 µs rounds up to 2 µs, admitting only 500000/s (16.7% less)", tooFine.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_store_s_unchecked_share_of_a_gcra_limit_keeps_a_burst_of_at_least_one()
    {
        Assert.Equal(1, Limit.UncheckedGcra(Rate.Parse("10/s"), 0).Burst);
        Assert.Equal(4, Limit.UncheckedGcra(Rate.Parse("10/s"), 4).Burst);
    }

    [Fact]
    public void Quotas_concurrency_and_periods_say_what_is_wrong()
    {
        Assert.StartsWith("The calendar quota 10/h must count per one day, week, month or year", Assert.Throws<ArgumentException>(() => Limit.Quota(Rate.Parse("10/h"), QuotaCalendar.Utc)).Message, StringComparison.Ordinal);
        Assert.Equal("A concurrency limit cannot be leased: its permits are held, not spent.", Assert.Throws<InvalidOperationException>(() => Limit.Concurrency(3).WithLeasedSlice(1)).Message);
        Assert.Equal("Only calendar quotas have calendar periods.", Assert.Throws<InvalidOperationException>(() => Limit.Quota(Rate.Parse("10/h"), null).CalendarPeriod(0)).Message);
        Assert.Contains("is beyond 2^53 - 1", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.FixedWindow(new Rate(1L << 53, 1, RateUnit.Second))).Message, StringComparison.Ordinal);

        // A century fits a window, not a sliding window, which keeps two periods.
        var century = new Rate(1, 100, RateUnit.Year);
        Assert.Equal(century, Limit.FixedWindow(century).Rate);
        var twice = Assert.Throws<ArgumentOutOfRangeException>(() => Limit.SlidingWindow(century));
        Assert.Contains("is too long: a limit counts spans of at most 2^52 µs (about 142 years), and a sliding window keeps two periods", twice.Message, StringComparison.Ordinal);
        var once = Assert.Throws<ArgumentOutOfRangeException>(() => Limit.FixedWindow(new Rate(1, 200, RateUnit.Year)));
        Assert.Contains("(about 142 years).", once.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("5/h", "5/h")]
    [InlineData("5/hour", "5/h")]
    [InlineData("7/d", "7/d")]
    [InlineData("2/month", "2/month")]
    [InlineData("1/year", "1/year")]
    [InlineData("3/2week", "3/2week")]
    public void A_rate_is_written_in_its_shortest_unit(string text, string written) => Assert.Equal(written, Rate.Parse(text).ToString());

    [Fact]
    public void Rates_too_large_to_count_are_refused()
    {
        Assert.Equal("unit", Assert.Throws<ArgumentOutOfRangeException>(() => new Rate(1, 1, (RateUnit)99)).ParamName);
        Assert.False(Rate.TryParse("1/999999999year", out _, out var error));
        Assert.EndsWith("the period is too long.", error, StringComparison.Ordinal);
        Assert.False(Rate.TryParse("99999999999G/s", out _));
    }
}
