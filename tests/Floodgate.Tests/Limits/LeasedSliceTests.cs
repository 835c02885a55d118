using Floodgate.Limits;

namespace Floodgate.Tests.Limits;

public sealed class LeasedSliceTests
{
    [Fact]
    public void A_leased_copy_keeps_every_parameter_and_adds_the_slice()
    {
        var strict = Limit.Gcra(new Rate(300, 1, RateUnit.Minute), 50);
        var leased = strict.WithLeasedSlice(10);
        Assert.Equal(0, strict.LeasedSlice);
        Assert.Equal(10, leased.LeasedSlice);
        Assert.Equal((strict.Algorithm, strict.Rate, strict.Burst, strict.IntervalMicroseconds, strict.ToleranceMicroseconds),
            (leased.Algorithm, leased.Rate, leased.Burst, leased.IntervalMicroseconds, leased.ToleranceMicroseconds));
        Assert.Equal("gcra 300/min burst 50 leased 10", leased.ToString());
        Assert.Same(leased, leased.WithLeasedSlice(10));
        Assert.Equal(0, leased.WithLeasedSlice(0).LeasedSlice);

        var quota = Limit.Quota(new Rate(1000, 1, RateUnit.Day), QuotaCalendar.Utc).WithLeasedSlice(100);
        Assert.Same(QuotaCalendar.Utc, quota.Calendar);
    }

    [Fact]
    public void Bad_slices_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Gcra(new Rate(10, 1, RateUnit.Second)).WithLeasedSlice(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Limit.FixedWindow(new Rate(10, 1, RateUnit.Second)).WithLeasedSlice(11));
        Assert.Throws<InvalidOperationException>(() => Limit.Concurrency(10).WithLeasedSlice(1));
    }
}
