using Floodgate.Limits;

namespace Floodgate.Tests.Limits;

public sealed class RateTests
{
    [Theory]
    [InlineData("10/s", 10, 1_000_000)]
    [InlineData("300/min", 300, 60_000_000)]
    [InlineData("5000/h", 5000, 3_600_000_000)]
    [InlineData("100000/d", 100_000, 86_400_000_000)]
    [InlineData("1M/week", 1_000_000, 604_800_000_000)]
    [InlineData("50000/month", 50_000, 2_592_000_000_000)]
    [InlineData("2/5s", 2, 5_000_000)]
    [InlineData(" 7 / 2 minutes ", 7, 120_000_000)]
    [InlineData("3k/hour", 3000, 3_600_000_000)]
    [InlineData("1/year", 1, 31_536_000_000_000)]
    public void Parses_the_forms_users_write(string text, long amount, long periodMicroseconds)
    {
        var rate = Rate.Parse(text);
        Assert.Equal(amount, rate.Amount);
        Assert.Equal(periodMicroseconds, rate.PeriodMicroseconds);
    }

    [Theory]
    [InlineData("", "is not a rate")]
    [InlineData("100", "is not a rate")]
    [InlineData("/s", "is not a rate")]
    [InlineData("0/s", "must be a positive whole number")]
    [InlineData("-5/s", "must be a positive whole number")]
    [InlineData("ten/s", "must be a positive whole number")]
    [InlineData("10/fortnight", "the unit 'fortnight' is unknown")]
    [InlineData("10/0s", "multiplier '0'")]
    [InlineData("10/", "is not a rate")]
    [InlineData("99999999999999999999/s", "must be a positive whole number")]
    public void Rejects_malformed_forms_quoting_the_input(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => Rate.Parse(text));
        Assert.Contains($"'{text}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("300/min")]
    [InlineData("2/5s")]
    [InlineData("1000000/week")]
    public void Round_trips_through_its_text(string text) => Assert.Equal(Rate.Parse(text), Rate.Parse(Rate.Parse(text).ToString()));

    [Fact]
    public void Gcra_rejects_rates_finer_than_a_microsecond()
    {
        var error = Assert.Throws<ArgumentException>(() => Limit.Gcra(Rate.Parse("2000000/s")));
        Assert.Contains("fixed_window", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Calendar_quotas_need_a_whole_calendar_unit()
    {
        Assert.Throws<ArgumentException>(() => Limit.Quota(Rate.Parse("10/2d"), QuotaCalendar.Utc));
        Assert.Throws<ArgumentException>(() => Limit.Quota(Rate.Parse("10/h"), QuotaCalendar.Utc));
        Assert.Equal(LimitAlgorithm.Quota, Limit.Quota(Rate.Parse("10/2d"), calendar: null).Algorithm);
    }

    [Fact]
    public void Unknown_time_zones_are_named_in_the_error()
    {
        var error = Assert.Throws<ArgumentException>(() => QuotaCalendar.ForTimeZone("Mars/Olympus_Mons"));
        Assert.Contains("Mars/Olympus_Mons", error.Message, StringComparison.Ordinal);
    }
}
