using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using FsCheck.Xunit;

namespace Floodgate.Tests.Shaping;

/// <summary>The leaky bucket as a meter: gcra's decisions under keys of its own.</summary>
public sealed class LeakyBucketTests
{
    private const long Second = 1_000_000;
    private const long T0 = 1_800_000_000L * Second;

    [Fact]
    public void A_bucket_of_the_burst_leaks_at_the_rate()
    {
        var limit = Limit.LeakyBucket(Rate.Parse("10/s"), burst: 2);
        var state = default(LimitState);
        Assert.True(LimitMath.Decide(limit, state, T0, 1, out state).IsAllowed);
        Assert.True(LimitMath.Decide(limit, state, T0, 1, out state).IsAllowed);
        var full = LimitMath.Decide(limit, state, T0, 1, out _);
        Assert.Equal(new LimitOutcome(false, 0, 200_000, 100_000), full);

        // One unit leaks out every 100 ms.
        Assert.True(LimitMath.Decide(limit, state, T0 + 100_000, 1, out state).IsAllowed);
        Assert.False(LimitMath.Decide(limit, state, T0 + 100_000, 1, out _).IsAllowed);
        Assert.Equal(state.A, LimitMath.ExpiresAt(limit, state));
    }

    [Property(MaxTest = 200)]
    public bool As_a_meter_it_admits_exactly_what_gcra_admits(byte amountSeed, byte burstSeed, int seed)
    {
        var rate = new Rate(1 + (amountSeed % 50), 1, RateUnit.Second);
        var burst = 1 + (burstSeed % 20);
        var gcra = Limit.Gcra(rate, burst);
        var leaky = Limit.LeakyBucket(rate, burst);
        var random = new Random(seed);
        LimitState a = default, b = default;
        var now = T0;
        for (var i = 0; i < 300; i++)
        {
            now += random.Next(3) == 0 ? 0 : random.NextInt64(2 * Second / rate.Amount);
            var cost = random.Next(4);
            if (LimitMath.Decide(gcra, a, now, cost, out a) != LimitMath.Decide(leaky, b, now, cost, out b) || a != b)
            {
                return false;
            }

            var delta = random.Next(5) == 0 ? random.Next(-2, 3) : 0;
            a = LimitMath.Settle(gcra, a, now, delta);
            b = LimitMath.Settle(leaky, b, now, delta);
        }

        return true;
    }

    [Fact]
    public void Its_keys_are_not_gcra_keys_and_it_reads_as_leaky_bucket()
    {
        var gcra = new RateLimitRule("api", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/s")));
        var leaky = new RateLimitRule("api", RateLimitTier.User, Limit.LeakyBucket(Rate.Parse("1/s")));
        Assert.NotEqual(KeyHasher.Seed("api", LimitAlgorithm.Gcra), KeyHasher.Seed("api", LimitAlgorithm.LeakyBucket));
        Assert.Equal("leaky_bucket 1/s", leaky.Limit!.ToString());
        Assert.Equal("leaky_bucket 10/s burst 3", Limit.LeakyBucket(Rate.Parse("10/s"), 3).ToString());
        Assert.Equal("leaky_bucket 20/s burst 3", Limit.LeakyBucket(Rate.Parse("10/s"), 3).WithRate(Rate.Parse("20/s")).ToString());
        Assert.Equal(LimitAlgorithm.LeakyBucket, ReplicaShare.Of(leaky.Limit, 3).Algorithm);
        Assert.Equal(LimitAlgorithm.Gcra, gcra.Limit!.Algorithm);
        var e = Assert.Throws<ArgumentException>(() => Limit.LeakyBucket(Rate.Parse("700000/s")));
        Assert.Contains("too fine for leaky_bucket", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_memory_store_keeps_gcra_and_leaky_bucket_apart()
    {
        var store = new MemoryStore();
        var outcomes = new StoreOutcome[2];
        var gcraKey = StoreKey.Create("g", "alice");
        var leakyKey = StoreKey.Create("l", "alice");
        store.Decide([new(Limit.Gcra(Rate.Parse("1/s")), gcraKey, 1, false), new(Limit.LeakyBucket(Rate.Parse("1/s")), leakyKey, 1, false)], outcomes, T0);
        Assert.True(outcomes[0].Outcome.IsAllowed && outcomes[1].Outcome.IsAllowed);
        store.Decide([new(Limit.LeakyBucket(Rate.Parse("1/s")), leakyKey, 1, false)], outcomes, T0 + 1);
        Assert.False(outcomes[0].Outcome.IsAllowed);
    }

    [Fact]
    public void As_a_queue_it_gives_each_request_the_next_slot_until_max_delay_is_full()
    {
        // nginx's limit_req without nodelay: 10/s with 5 s of queue holds 50 requests, one every 100 ms.
        var limit = Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromSeconds(5));
        Assert.Equal(50, limit.Burst);
        Assert.Equal("leaky_bucket 10/s max_delay 5s", limit.ToString());
        var state = default(LimitState);
        for (var i = 0; i < 50; i++)
        {
            var admitted = LimitMath.Decide(limit, state, T0, 1, out state);
            Assert.True(admitted.IsAllowed);
            Assert.Equal(i * 100_000, admitted.DelayMicroseconds);
            Assert.Equal(49 - i, admitted.Remaining);
        }

        var full = LimitMath.Decide(limit, state, T0, 1, out _);
        Assert.False(full.IsAllowed);
        Assert.Equal(0, full.DelayMicroseconds);
        Assert.Equal(100_000, full.RetryAfterMicroseconds);

        // 250 ms later two slots have gone by and two more fit, the first waiting 4.75 s.
        var later = LimitMath.Decide(limit, state, T0 + 250_000, 1, out state);
        Assert.Equal(4_750_000, later.DelayMicroseconds);
        Assert.True(LimitMath.Decide(limit, state, T0 + 250_000, 1, out state).IsAllowed);
        Assert.False(LimitMath.Decide(limit, state, T0 + 250_000, 1, out _).IsAllowed);

        // A cost takes as many slots; one longer than the queue never fits.
        Assert.Equal(LimitOutcome.Never, LimitMath.Decide(limit, default, T0, 51, out _).RetryAfterMicroseconds);
        Assert.Equal(0, LimitMath.Decide(limit, default, T0, 50, out _).DelayMicroseconds);
    }

    [Fact]
    public void A_queue_keeps_its_delay_through_a_new_rate_and_a_replica_share_and_is_never_leased()
    {
        var limit = Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromSeconds(2));
        Assert.Equal("leaky_bucket 20/s max_delay 2s", limit.WithRate(Rate.Parse("20/s")).ToString());
        Assert.Equal(40, limit.WithRate(Rate.Parse("20/s")).Burst);
        var share = ReplicaShare.Of(limit, 2);
        Assert.Equal(TimeSpan.FromSeconds(2), share.MaxDelay);
        Assert.Equal(200_000, share.IntervalMicroseconds);
        Assert.Throws<InvalidOperationException>(() => limit.WithLeasedSlice(2));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromMilliseconds(50)));
        Assert.Contains("must hold at least one request, 100 ms", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, LimitMath.Decide(Limit.LeakyBucket(Rate.Parse("10/s")), new LimitState(T0 + 500_000, 0, 0), T0, 1, out _).DelayMicroseconds);
    }

    [Fact]
    public async Task The_engine_reports_the_longest_slot_wait_of_its_enforced_queues()
    {
        var queue = new RateLimitRule("queue", RateLimitTier.Service, Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromSeconds(1))) { Key = [] };
        var shadow = new RateLimitRule("shadow", RateLimitTier.Global, Limit.LeakyBucketQueue(Rate.Parse("1/s"), TimeSpan.FromSeconds(10))) { Mode = RuleMode.Shadow };
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(T0 / 1000));
        var engine = new Floodgate.Engine.RateLimitEngine(new RateLimitPolicy([queue, shadow]), new MemoryStore(timeProvider: clock));
        var request = new RequestContext { Path = "/export", Method = "GET", ClientIp = System.Net.IPAddress.Loopback };
        var delays = new List<TimeSpan>();
        for (var i = 0; i < 11; i++)
        {
            var result = await engine.EvaluateAsync(request);
            delays.Add(result.IsAllowed ? result.Delay : TimeSpan.MinValue);
        }

        Assert.Equal([.. Enumerable.Range(0, 10).Select(i => TimeSpan.FromMilliseconds(100 * i)), TimeSpan.MinValue], delays);
    }

    [Fact]
    public void The_rate_limiter_adapters_refuse_a_queue_they_could_not_wait_for()
    {
        var queue = Limit.LeakyBucketQueue(Rate.Parse("10/s"), TimeSpan.FromSeconds(1));
        Assert.Throws<ArgumentException>(() => new Floodgate.RateLimiting.FloodgateRateLimiter(new MemoryStore(), queue));
        using var partitioned = new Floodgate.RateLimiting.FloodgatePartitionedRateLimiter<string>(new MemoryStore(), key => new Floodgate.RateLimiting.FloodgatePartition(key, queue));
        Assert.Throws<ArgumentException>(() => partitioned.AttemptAcquire("alice"));
        using var meter = new Floodgate.RateLimiting.FloodgateRateLimiter(new MemoryStore(), Limit.LeakyBucket(Rate.Parse("10/s")));
        using var lease = meter.AttemptAcquire();
        Assert.True(lease.IsAcquired);
    }
}
