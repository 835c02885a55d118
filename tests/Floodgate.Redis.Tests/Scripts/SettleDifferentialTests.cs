using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>
/// Settlement, the script against the engine's math: for every algorithm that settles, the same reservations and the same
/// refunds and extra charges (small and past the budget, some huge) go through the MemoryStore (LimitMath.Settle) and the
/// RedisStore (settle.lua on the real server) at explicit times that cross window and period edges. After every step a
/// probe and a real decision must answer alike in both stores: verdict, remaining, reset and retry-after.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class SettleDifferentialTests(RedisFixture fixture, ITestOutputHelper output)
{
    // Saturday 28 March 2026, 20:00 UTC: the Paris day quota meets a 23-hour day.
    private static readonly DateTimeOffset Start = new(2026, 3, 28, 20, 0, 0, TimeSpan.Zero);

    private const int Steps = 120;

    private static readonly Dictionary<string, Limit[]> LimitSets = new()
    {
        ["gcra"] = [Limit.Gcra(new Rate(100, 1, RateUnit.Minute)), Limit.Gcra(new Rate(7, 3, RateUnit.Second), 5)],
        ["sliding_window"] = [Limit.SlidingWindow(new Rate(100, 1, RateUnit.Minute)), Limit.SlidingWindow(new Rate(20, 10, RateUnit.Second))],
        ["fixed_window"] = [Limit.FixedWindow(new Rate(100, 1, RateUnit.Minute)), Limit.FixedWindow(new Rate(5, 2, RateUnit.Second))],
        ["quota_rolling"] = [Limit.Quota(new Rate(100, 1, RateUnit.Minute), null)],
        ["quota_calendar"] = [Limit.Quota(new Rate(100, 1, RateUnit.Day), QuotaCalendar.ForTimeZone("Europe/Paris")), Limit.Quota(new Rate(50, 1, RateUnit.Week), QuotaCalendar.Utc)],
    };

    public static TheoryData<string> Scenarios() => [.. LimitSets.Keys];

    [Theory]
    [MemberData(nameof(Scenarios))]
    public async Task Redis_and_memory_stores_settle_alike(string scenario)
    {
        var clock = TestStores.Clock(Start);
        var memory = new MemoryStore(timeProvider: clock);
        await using var redis = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false, clock);
        var limits = LimitSets[scenario];
        for (var index = 0; index < limits.Length; index++)
        {
            var limit = limits[index];
            var check = new RateLimitCheck(limit, StoreKey.Create("settle" + index, "alice"), 1, false);
            var random = new Random(17 * index + scenario.Length);
            var now = TestStores.Micros(Start);
            int refunds = 0, charges = 0, overdrawn = 0;
            for (var step = 0; step < Steps; step++)
            {
                var context = $"{limit}, step {step}, now {now}";

                // A reservation, decided alike.
                var reserve = check with { Cost = 1 + random.NextInt64(Math.Max(1, limit.Burst / 2)) };
                await DecideAsync(memory, redis, reserve, now, context + ", reservation");

                // Then the real cost: less (a refund), more (an extra charge, at times past the budget), or a huge one.
                // Then the real cost: less (a refund), more (an extra charge, at times past the budget), or once a huge
                // charge, then a huge refund, both clamped to the exact range alike.
                var delta = step switch
                {
                    Steps / 2 => long.MaxValue / 2,
                    (Steps / 2) + 1 => long.MinValue / 2,
                    _ => random.Next(10) switch
                    {
                        0 => limit.Amount * (1 + random.Next(3)),
                        < 6 => -random.NextInt64(reserve.Cost + (limit.Amount / 2) + 1),
                        _ => random.NextInt64((limit.Amount / 2) + 1),
                    },
                };
                // Settled a moment later, sometimes in the next window or period.
                now += random.Next(4) == 0 ? limit.PeriodMicroseconds / 2 + random.NextInt64(limit.PeriodMicroseconds) : random.NextInt64(1_000_000);
                memory.Settle(check, delta, now);
                Assert.Equal(CostSettlement.Settled, await redis.SettleAsync(check, delta, now));
                if (delta < 0)
                {
                    refunds++;
                }
                else
                {
                    charges++;
                }

                var probe = await DecideAsync(memory, redis, check with { Cost = 0, IsProbe = true }, now, context + $", probe after settling {delta}");
                if (!probe.Outcome.IsAllowed)
                {
                    overdrawn++;
                }

                // Time moves on, at times to where an overdrawn key has refilled.
                now += probe.Outcome.RetryAfterMicroseconds > 0 && random.Next(2) == 0
                    ? Math.Min(probe.Outcome.RetryAfterMicroseconds, 40L * 24 * 3600 * 1_000_000)
                    : random.NextInt64(limit.PeriodMicroseconds / 3 + 1);
            }

            output.WriteLine($"{limit}: {refunds} refunds, {charges} extra charges, {overdrawn} overdrawn");
            Assert.True(refunds >= Steps / 10 && charges >= Steps / 10 && overdrawn >= Steps / 20, $"{limit}: too little exercised ({refunds} refunds, {charges} charges, {overdrawn} overdrawn)");
        }

        Assert.Equal(0, redis.Mismatches);
        Assert.Equal(0, redis.Failures);
    }

    private static async Task<StoreOutcome> DecideAsync(MemoryStore memory, RedisStore redis, RateLimitCheck check, long now, string context)
    {
        var expected = new StoreOutcome[1];
        var actual = new StoreOutcome[1];
        memory.Decide([check], expected, now);
        await redis.DecideAsync(new[] { check }, actual, now);
        Assert.False(actual[0].IsStoreFailure, context + ": the Redis store failed");
        Assert.True(expected[0].Outcome == actual[0].Outcome, $"{context}: memory {expected[0].Outcome}, redis {actual[0].Outcome}");
        Assert.True(expected[0].Committed == actual[0].Committed, $"{context}: committed {expected[0].Committed} in memory, {actual[0].Committed} in redis");
        return actual[0];
    }
}
