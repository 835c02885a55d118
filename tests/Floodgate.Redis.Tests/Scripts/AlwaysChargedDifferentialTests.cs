using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// Always-charged checks (<see cref="RateLimitCheck.IsAlwaysCharged"/>, the Envoy service's reference counting) go
/// through the MemoryStore and the RedisStore on one clock: outcomes and commits must be identical, so the script's
/// charge past the limit is LimitMath.Settle's, down to the saturation of huge costs.
/// </summary>
public abstract class AlwaysChargedDifferentialTests(IServerFixture fixture)
{
    private static readonly DateTimeOffset Start = new(2026, 3, 28, 20, 0, 0, TimeSpan.Zero);

    private static readonly Limit[] Limits =
    [
        Limit.FixedWindow(new Rate(6, 1, RateUnit.Second)), Limit.SlidingWindow(new Rate(5, 1, RateUnit.Second)),
        Limit.Gcra(new Rate(4, 1, RateUnit.Second), 3), Limit.Quota(new Rate(20, 1, RateUnit.Minute), null),
        Limit.Quota(new Rate(30, 1, RateUnit.Day), QuotaCalendar.Utc),

        // A denied charge fills the log to its amount, never past it; a leaky bucket is charged as gcra is.
        Limit.SlidingLog(new Rate(5, 1, RateUnit.Second)), Limit.LeakyBucket(new Rate(4, 1, RateUnit.Second), 2),

        // A year's interval: a large cost pushes the arrival time past now + 2^52 µs, where it saturates.
        Limit.Gcra(new Rate(2, 1, RateUnit.Year), 2),
    ];

    [Theory]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    public async Task Redis_and_memory_stores_charge_alike_past_the_limit(int seed)
    {
        var clock = TestStores.Clock(Start);
        var memory = new MemoryStore(timeProvider: clock);
        var cache = seed == 33;
        await using var redis = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = cache, clock);
        var random = new Random(seed);
        var identities = new[] { "alice", "bob" };
        int chargedDenials = 0, zeroDenials = 0, saturated = 0, stoppedSiblings = 0;
        // 500 steps over eight limits: each limit meets as many charges as 400 steps over six did.
        for (var step = 0; step < 500; step++)
        {
            clock.Advance(TimeSpan.FromMicroseconds(random.NextInt64(150_000)));
            var now = TestStores.Micros(clock.GetUtcNow());
            var identity = identities[random.Next(identities.Length)];
            // With the over-limit cache, one check a call: a cached denial leaves its identity's other checks undecided,
            // always-charged ones too, where the memory store (which has no such cache) charges them.
            var batch = Enumerable.Range(0, Limits.Length).OrderBy(_ => random.Next()).Take(cache ? 1 : 1 + random.Next(3))
                .Select(index =>
                {
                    var cost = random.Next(14) switch
                    {
                        0 or 1 => 0L,
                        2 => 3L,
                        3 => 7L,
                        4 when random.Next(3) == 0 => random.Next(2) == 0 ? long.MaxValue : Limit.MaxAmount,
                        _ => 1L,
                    };
                    return new RateLimitCheck(Limits[index], StoreKey.Create("charged" + index, identity), cost, random.Next(6) == 0)
                    {
                        IsAlwaysCharged = random.Next(4) != 0,
                        IsProbe = random.Next(12) == 0,
                    };
                })
                .ToArray();
            var expected = new StoreOutcome[batch.Length];
            var actual = new StoreOutcome[batch.Length];
            memory.Decide(batch, expected, now);
            await redis.DecideAsync(batch, actual, now);
            var groupDenied = batch.Select((c, i) => !c.IsShadow && !expected[i].Outcome.IsAllowed).Any(d => d);
            for (var i = 0; i < batch.Length; i++)
            {
                var check = batch[i];
                var context = $"step {step}, check {i} ({check.Limit}, cost {check.Cost}, charged {check.IsAlwaysCharged}, probe {check.IsProbe}, shadow {check.IsShadow}) at {now}";
                Assert.False(actual[i].IsStoreFailure, context);
                // A cached denial describes the state Redis read when it was cached; a charge since has pushed the key
                // further over its limit, so the answer is the same, its numbers those of the earlier state.
                var same = cache ? expected[i].Outcome.IsAllowed == actual[i].Outcome.IsAllowed : expected[i].Outcome == actual[i].Outcome;
                Assert.True(same, $"{context}: memory {expected[i].Outcome}, redis {actual[i].Outcome}");
                Assert.True(expected[i].Committed == actual[i].Committed, context + ": committed differs");
                var charged = check.IsAlwaysCharged && !check.IsProbe;
                Assert.True(!charged || actual[i].Committed, context + ": an always-charged check was not charged");
                chargedDenials += charged && !actual[i].Outcome.IsAllowed && check.Cost > 0 ? 1 : 0;
                zeroDenials += check.Cost == 0 && !actual[i].Outcome.IsAllowed ? 1 : 0;
                saturated += charged && check.Cost >= Limit.MaxAmount ? 1 : 0;
                stoppedSiblings += !charged && groupDenied && actual[i].Outcome.IsAllowed && !actual[i].Committed ? 1 : 0;
            }
        }

        // Denials of cost 0 are the point: only a state charged past its limit denies a check that spends nothing.
        Assert.True(chargedDenials > 30 && zeroDenials > 10 && saturated > 3 && (cache || stoppedSiblings > 3), $"the sequence exercised too little: {chargedDenials} charged denials, {zeroDenials} denials of cost 0, {saturated} saturating charges, {stoppedSiblings} siblings stopped");
        Assert.Equal(0, redis.Mismatches);
        Assert.Equal(0, redis.Failures);
    }
}
