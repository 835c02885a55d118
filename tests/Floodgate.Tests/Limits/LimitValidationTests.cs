using Floodgate.Limits;

namespace Floodgate.Tests.Limits;

/// <summary>A limit that cannot be decided exactly is refused when it is built, naming the parameter at fault.</summary>
public sealed class LimitValidationTests
{
    [Fact]
    public void An_uninitialized_rate_is_refused_when_the_limit_is_built()
    {
        // default(Rate) has no period: the windows divided by it at the first decision.
        foreach (var build in new Func<Limit>[]
        {
            () => Limit.FixedWindow(default),
            () => Limit.SlidingWindow(default),
            () => Limit.Gcra(default),
            () => Limit.Quota(default, null),
        })
        {
            var error = Assert.Throws<ArgumentException>(build);
            Assert.Equal("rate", error.ParamName);
            Assert.Contains("uninitialized", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_burst_whose_tolerance_leaves_exact_doubles_is_refused()
    {
        // A huge burst overflowed (OverflowException); 1/year with a burst of 1000 is a tolerance of 3.15e16 µs, past
        // 2^53, which Lua's doubles no longer count exactly.
        Assert.Equal("burst", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Gcra(Rate.Parse("1/s"), long.MaxValue)).ParamName);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Gcra(Rate.Parse("1/year"), 1000));
        Assert.Equal("burst", error.ParamName);
        Assert.Contains("at most 142", error.Message, StringComparison.Ordinal);
        Assert.Equal(100 * 31_536_000_000_000L, Limit.Gcra(Rate.Parse("1/year"), 100).ToleranceMicroseconds);
    }

    [Fact]
    public void Amounts_and_periods_beyond_exact_doubles_are_refused()
    {
        Assert.Equal("rate", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.FixedWindow(Rate.Parse("10000000G/s"))).ParamName);
        Assert.Equal("rate", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.FixedWindow(new Rate(1, int.MaxValue, RateUnit.Year))).ParamName);

        // A sliding window keeps two periods: 100 years fit a fixed window, not a sliding one.
        Assert.Equal(LimitAlgorithm.FixedWindow, Limit.FixedWindow(new Rate(1, 100, RateUnit.Year)).Algorithm);
        Assert.Equal("rate", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.SlidingWindow(new Rate(1, 100, RateUnit.Year))).ParamName);
        Assert.Equal("rate", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Quota(new Rate(1, 200, RateUnit.Year), null)).ParamName);
    }

    [Fact]
    public void Concurrency_permits_and_lease_timeouts_are_checked()
    {
        Assert.Equal("permits", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Concurrency(0)).ParamName);
        Assert.Equal("permits", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Concurrency(1L << 60)).ParamName);
        Assert.Equal("leaseTimeout", Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Concurrency(5, TimeSpan.MaxValue)).ParamName);
    }

    [Theory]
    [InlineData("600k/s", "rounds up to 2 µs, admitting only 500000/s (16.7% less)")]
    [InlineData("300k/s", "rounds up to 4 µs, admitting only 250000/s (16.7% less)")]
    [InlineData("70k/s", "rounds up to 15 µs, admitting only 66666/s (4.8% less)")]
    public void A_gcra_rate_that_rounding_would_cut_by_more_than_one_percent_is_refused(string rate, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => Limit.Gcra(Rate.Parse(rate)));
        Assert.Equal("rate", error.ParamName);
        Assert.True(error.Message.Contains(expected, StringComparison.Ordinal), error.Message);
        Assert.Contains("use fixed_window or sliding_window", error.Message, StringComparison.Ordinal);
        Assert.Equal(LimitAlgorithm.FixedWindow, Limit.FixedWindow(Rate.Parse(rate)).Algorithm);
    }

    [Theory]
    [InlineData("1M/s", 1)]
    [InlineData("100k/s", 10)]
    [InlineData("9999/s", 101)]
    [InlineData("7/3s", 428_572)]
    public void A_gcra_rate_within_one_percent_of_its_rounding_is_kept(string rate, long interval) =>
        Assert.Equal(interval, Limit.Gcra(Rate.Parse(rate)).IntervalMicroseconds);
}
