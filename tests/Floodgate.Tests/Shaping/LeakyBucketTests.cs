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
}
