using Floodgate.Limits;

namespace Floodgate.Tests.Limits;

/// <summary>
/// What a limit says of itself (its text reaches logs, metrics and problem details) and the smallest lease timeout it
/// takes. Found missing by mutation testing (docs/testing.md).
/// </summary>
public sealed class LimitDescriptionTests
{
    [Theory]
    [InlineData("gcra", "gcra 10/s")]
    [InlineData("gcra-burst", "gcra 300/min burst 50")]
    [InlineData("sliding", "sliding_window 20/10s")]
    [InlineData("fixed", "fixed_window 4/2min")]
    [InlineData("rolling", "quota 30/h rolling")]
    [InlineData("calendar", "quota 40/d UTC")]
    [InlineData("concurrency", "concurrency 5 lease 2.5s")]
    public void A_limit_in_strict_mode_describes_itself_without_a_slice(string name, string text)
    {
        var limit = name switch
        {
            "gcra" => Limit.Gcra(Rate.Parse("10/s")),
            "gcra-burst" => Limit.Gcra(Rate.Parse("300/min"), 50),
            "sliding" => Limit.SlidingWindow(Rate.Parse("20/10s")),
            "fixed" => Limit.FixedWindow(Rate.Parse("4/2min")),
            "rolling" => Limit.Quota(Rate.Parse("30/h"), null),
            "calendar" => Limit.Quota(Rate.Parse("40/d"), QuotaCalendar.Utc),
            _ => Limit.Concurrency(5, TimeSpan.FromMilliseconds(2500)),
        };
        Assert.Equal(text, limit.ToString());
        Assert.Equal(0, limit.LeasedSlice);
    }

    [Fact]
    public void A_lease_timeout_is_at_least_a_millisecond()
    {
        Assert.Equal(1_000, Limit.Concurrency(1, TimeSpan.FromMilliseconds(1)).LeaseTimeoutMicroseconds);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Concurrency(1, TimeSpan.FromMicroseconds(999)));
        Assert.Equal("leaseTimeout", error.ParamName);
        Assert.Equal(Limit.DefaultLeaseTimeout, Limit.Concurrency(1).LeaseTimeout);
    }
}
