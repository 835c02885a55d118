using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Tests.Stores;

public sealed class ReplicaShareTests
{
    [Fact]
    public void A_replica_s_share_of_a_gcra_limit_is_as_exact_as_the_limit()
    {
        // 100k/s is exact (10 µs). A third of it as 33,333/s would round its interval from 30.0003 to 31 µs (3 % less,
        // and a rate Limit.Gcra refuses); as 100k per 3 s it is exactly 30 µs.
        var share = ReplicaShare.Of(Limit.Gcra(Rate.Parse("100k/s"), 3000), 3);
        Assert.Equal(30, share.IntervalMicroseconds);
        Assert.Equal(1000, share.Burst);

        // 1M/s over 3 replicas: 3 µs a request, where 333,333/s would round to 4 µs and admit a quarter less.
        Assert.Equal(3, ReplicaShare.Of(Limit.Gcra(Rate.Parse("1M/s"), 100), 3).IntervalMicroseconds);

        // A month over 2,000 replicas is past what a period may span: the amount is divided instead, and nothing throws.
        var monthly = ReplicaShare.Of(Limit.Gcra(Rate.Parse("1000/month"), 10), 2000);
        Assert.Equal(1, monthly.Amount);
        Assert.Equal(1, monthly.Burst);
    }

    [Fact]
    public void Other_limits_divide_their_amount_and_keep_the_rest()
    {
        Assert.Equal("fixed_window 33/s", ReplicaShare.Of(Limit.FixedWindow(Rate.Parse("100/s")), 3).ToString());
        Assert.Equal("sliding_window 1/min", ReplicaShare.Of(Limit.SlidingWindow(Rate.Parse("2/min")), 5).ToString());
        var quota = ReplicaShare.Of(Limit.Quota(Rate.Parse("1000/day"), QuotaCalendar.Utc), 4);
        Assert.Equal(250, quota.Amount);
        Assert.Same(QuotaCalendar.Utc, quota.Calendar);
        var concurrency = ReplicaShare.Of(Limit.Concurrency(10, TimeSpan.FromSeconds(7)), 3);
        Assert.Equal(3, concurrency.Amount);
        Assert.Equal(TimeSpan.FromSeconds(7), concurrency.LeaseTimeout);

        var limit = Limit.Gcra(Rate.Parse("10/s"));
        Assert.Same(limit, ReplicaShare.Of(limit, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicaShare.Of(limit, 0));
    }
}
