using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>Four stores, each with its own connection like four gateway replicas, hammer one key at once.</summary>
public abstract class AccuracyTests(IServerFixture fixture)
{
    private const int Replicas = 4;
    private const int WorkersPerReplica = 8;
    private const int AttemptsPerWorker = 40;

    public static TheoryData<string> StrictLimits() => ["gcra", "quota"];

    [Theory]
    [MemberData(nameof(StrictLimits))]
    public async Task Strict_mode_admits_exactly_the_limit(string algorithm)
    {
        // Long periods, so nothing refills during the test: exactly the amount may pass.
        var limit = algorithm == "gcra" ? Limit.Gcra(new Rate(500, 1, RateUnit.Day)) : Limit.Quota(new Rate(500, 1, RateUnit.Day), null);
        var (admitted, roundTrips) = await HammerAsync(limit);
        Assert.Equal(500, admitted);
        // Strict: with the over-limit cache off, every attempt, admitted or not, is decided in Redis.
        Assert.True(roundTrips >= Replicas * WorkersPerReplica * AttemptsPerWorker, $"{roundTrips} round trips");
    }

    [Fact]
    public async Task Leased_mode_stays_within_its_bound_with_far_fewer_round_trips()
    {
        const long Slice = 20;
        var limit = Limit.Gcra(new Rate(500, 1, RateUnit.Day)).WithLeasedSlice(Slice);
        var (admitted, roundTrips) = await HammerAsync(limit, overLimitCache: true);

        // The documented bound: at most replicas × slice over the limit. With no refill, slices left unspent at the end
        // are the only shortfall, also at most replicas × slice.
        Assert.InRange(admitted, 500 - (Replicas * Slice), 500 + (Replicas * Slice));
        Assert.True(roundTrips < 500 / 2, $"{roundTrips} round trips for {admitted} admissions");
    }

    private async Task<(int Admitted, long RoundTrips)> HammerAsync(Limit limit, bool overLimitCache = false)
    {
        var prefix = "acc" + Guid.NewGuid().ToString("N")[..8];
        var stores = new RedisStore[Replicas];
        for (var r = 0; r < Replicas; r++)
        {
            stores[r] = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = overLimitCache, prefix: prefix);
        }

        try
        {
            var check = new RateLimitCheck(limit, StoreKey.Create("global", "everything"), 1, false);
            var admitted = 0;
            using var start = new ManualResetEventSlim();
            var workers = new List<Task>();
            foreach (var store in stores)
            {
                for (var w = 0; w < WorkersPerReplica; w++)
                {
                    workers.Add(Task.Run(async () =>
                    {
                        start.Wait();
                        var outcomes = new StoreOutcome[1];
                        var checks = new[] { check };
                        for (var i = 0; i < AttemptsPerWorker; i++)
                        {
                            await store.DecideAsync(checks, outcomes);
                            Assert.False(outcomes[0].IsStoreFailure);
                            if (outcomes[0].Committed)
                            {
                                Interlocked.Increment(ref admitted);
                            }
                        }
                    }));
                }
            }

            start.Set();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(60));
            return (admitted, stores.Sum(s => s.RoundTrips));
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }
    }
}
