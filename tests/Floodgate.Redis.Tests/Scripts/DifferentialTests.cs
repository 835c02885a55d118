using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// The same seeded random request sequences go through the MemoryStore and the RedisStore on one explicit clock: every
/// outcome must be identical. This is what proves the Lua mirrors the C#.
/// </summary>
public abstract class DifferentialTests(IServerFixture fixture)
{
    // Saturday 28 March 2026, 20:00 UTC: Paris changes to summer time during the sequences.
    private static readonly DateTimeOffset Start = new(2026, 3, 28, 20, 0, 0, TimeSpan.Zero);

    public static TheoryData<string, int, bool> Scenarios()
    {
        var data = new TheoryData<string, int, bool>();
        foreach (var name in LimitSets.Keys)
        {
            data.Add(name, 1, false);
            data.Add(name, 2, true);
        }

        data.Add("mixed", 3, false);
        return data;
    }

    private static readonly Dictionary<string, Limit[]> LimitSets = new()
    {
        ["gcra"] = [Limit.Gcra(new Rate(10, 1, RateUnit.Second)), Limit.Gcra(new Rate(300, 1, RateUnit.Minute), 50), Limit.Gcra(new Rate(7, 3, RateUnit.Second), 1)],
        ["sliding_window"] = [Limit.SlidingWindow(new Rate(20, 10, RateUnit.Second)), Limit.SlidingWindow(new Rate(3, 1, RateUnit.Second))],
        ["fixed_window"] = [Limit.FixedWindow(new Rate(15, 1, RateUnit.Second)), Limit.FixedWindow(new Rate(4, 2, RateUnit.Minute))],
        ["quota_rolling"] = [Limit.Quota(new Rate(30, 1, RateUnit.Hour), null)],
        ["quota_calendar"] = [Limit.Quota(new Rate(40, 1, RateUnit.Day), QuotaCalendar.ForTimeZone("Europe/Paris")), Limit.Quota(new Rate(25, 1, RateUnit.Week), QuotaCalendar.Utc)],
        ["concurrency"] = [Limit.Concurrency(5, TimeSpan.FromSeconds(2)), Limit.Concurrency(2, TimeSpan.FromMilliseconds(300))],
        ["sliding_log"] = [Limit.SlidingLog(new Rate(12, 2, RateUnit.Second)), Limit.SlidingLog(new Rate(3, 1, RateUnit.Second))],
        ["leaky_bucket"] = [Limit.LeakyBucket(new Rate(10, 1, RateUnit.Second), 4), Limit.LeakyBucket(new Rate(7, 3, RateUnit.Second), 1)],
        ["mixed"] =
        [
            Limit.SlidingLog(new Rate(6, 1, RateUnit.Second)), Limit.LeakyBucket(new Rate(5, 1, RateUnit.Second), 2),
            Limit.Gcra(new Rate(10, 1, RateUnit.Second), 5), Limit.SlidingWindow(new Rate(12, 2, RateUnit.Second)),
            Limit.FixedWindow(new Rate(8, 1, RateUnit.Second)), Limit.Quota(new Rate(60, 1, RateUnit.Minute), null),
            Limit.Concurrency(3, TimeSpan.FromSeconds(1)),
        ],
    };

    [Theory]
    [MemberData(nameof(Scenarios))]
    public async Task Redis_and_memory_stores_decide_alike(string scenario, int seed, bool overLimitCache)
    {
        var limits = LimitSets[scenario];
        var clock = TestStores.Clock(Start);
        var memory = new MemoryStore(timeProvider: clock);
        await using var redis = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = overLimitCache, clock);
        var random = new Random(seed * 7919 + scenario.Length);
        var identities = overLimitCache ? new[] { "alice", "bob" } : new[] { "alice", "bob", "carol" };
        var leases = new List<(RateLimitCheck Check, long Memory, long Redis)>();
        var compared = 0;
        var allowed = 0;
        var denied = 0;
        RateLimitCheck[]? previous = null;
        var deniedBy = new List<string>();

        for (var step = 0; step < 400; step++)
        {
            // Time moves by up to one emission interval of a random limit; now and then by more than a period.
            var pace = limits[random.Next(limits.Length)];
            var stepMax = Math.Max(2, pace.PeriodMicroseconds / Math.Max(1, pace.Amount) / (overLimitCache ? 2 * limits.Length : 1));
            var advance = random.Next(40) == 0 ? pace.PeriodMicroseconds + random.NextInt64(stepMax) : random.NextInt64(stepMax);
            if (pace.Algorithm == LimitAlgorithm.Concurrency)
            {
                advance = random.NextInt64(pace.LeaseTimeoutMicroseconds / 4);
            }

            clock.Advance(TimeSpan.FromMicroseconds(advance));
            var now = TestStores.Micros(clock.GetUtcNow());

            var checks = new List<RateLimitCheck>();
            var groups = overLimitCache ? 1 : 1 + random.Next(2);
            for (var g = 0; g < groups; g++)
            {
                var identity = identities[random.Next(identities.Length)];
                var count = overLimitCache ? 1 : 1 + random.Next(Math.Min(3, limits.Length));
                foreach (var index in Enumerable.Range(0, limits.Length).OrderBy(_ => random.Next()).Take(count))
                {
                    var limit = limits[index];
                    if (checks.Any(c => c.Limit == limit && c.Key == StoreKey.Create("rule" + index, identity)))
                    {
                        continue;
                    }

                    var cost = random.Next(12) switch
                    {
                        0 => 0L,
                        1 => 2L,
                        2 => 3L,
                        3 when random.Next(4) == 0 => limit.Burst + 1,
                        _ => 1L,
                    };
                    checks.Add(new RateLimitCheck(limit, StoreKey.Create("rule" + index, identity), cost, !overLimitCache && random.Next(5) == 0));
                }
            }

            // A client that was denied often retries at once, as an agent in a loop does: the over-limit cache's case.
            var batch = overLimitCache && previous is not null && random.Next(2) == 0 ? previous : checks.ToArray();
            previous = batch;
            var expected = new StoreOutcome[batch.Length];
            var actual = new StoreOutcome[batch.Length];
            memory.Decide(batch, expected, now);
            await redis.DecideAsync(batch, actual, now);
            for (var i = 0; i < batch.Length; i++)
            {
                var context = $"step {step}, check {i} ({batch[i].Limit}, cost {batch[i].Cost}, shadow {batch[i].IsShadow}) at {now}";
                Assert.False(actual[i].IsStoreFailure, context);
                Assert.Equal(expected[i].Outcome, actual[i].Outcome);
                Assert.True(expected[i].Committed == actual[i].Committed, context + ": committed differs");
                Assert.True((expected[i].LeaseId != 0) == (actual[i].LeaseId != 0), context + ": lease differs");
                if (actual[i].LeaseId != 0)
                {
                    leases.Add((batch[i], expected[i].LeaseId, actual[i].LeaseId));
                }

                compared++;
                if (actual[i].Outcome.IsAllowed)
                {
                    allowed++;
                }
                else
                {
                    denied++;
                    deniedBy.Add($"{batch[i].Limit.Algorithm}/{batch[i].Cost}/{actual[i].Outcome.RetryAfterMicroseconds}");
                }
            }

            // Release some leases in both stores.
            while (leases.Count > 0 && random.Next(3) == 0)
            {
                var pick = random.Next(leases.Count);
                var (check, memoryLease, redisLease) = leases[pick];
                leases.RemoveAt(pick);
                await memory.ReleaseAsync(check, memoryLease);
                await redis.ReleaseAsync(check, redisLease);
            }
        }

        Assert.True(allowed > 20 && denied > 10, $"the sequence exercised too little: {allowed} allowed, {denied} denied of {compared}");
        Assert.Equal(0, redis.Mismatches);
        Assert.Equal(0, redis.Failures);
        // A sliding log is decided on its log, which only the script reads: never by the cache.
        if (overLimitCache && scenario is not ("mixed" or "concurrency" or "sliding_log"))
        {
            Assert.True(redis.LocalDecisions > 0, "the over-limit cache answered nothing: " + string.Join(", ", deniedBy));
        }
    }

    [Theory]
    [InlineData(21)]
    [InlineData(22)]
    public async Task Redis_and_memory_stores_decide_alike_when_the_clock_steps_back(int seed)
    {
        // Every window and quota meets states from its future: a quarter of the steps go back up to 300 ms, across
        // window boundaries, the start of a rolling period and (from 0.5 s before it) midnight UTC.
        Limit[] limits =
        [
            Limit.FixedWindow(new Rate(5, 1, RateUnit.Second)), Limit.SlidingWindow(new Rate(4, 1, RateUnit.Second)),
            Limit.Gcra(new Rate(5, 1, RateUnit.Second), 3), Limit.Quota(new Rate(40, 1, RateUnit.Hour), null),
            Limit.Quota(new Rate(60, 1, RateUnit.Day), QuotaCalendar.Utc), Limit.SlidingLog(new Rate(4, 1, RateUnit.Second)),
            Limit.LeakyBucket(new Rate(5, 1, RateUnit.Second), 2),
        ];
        var start = new DateTimeOffset(2026, 3, 28, 23, 59, 59, 500, TimeSpan.Zero);
        var clock = TestStores.Clock(start);
        var memory = new MemoryStore(timeProvider: clock);
        await using var redis = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false, clock);
        var random = new Random(seed);
        var identities = new[] { "alice", "bob" };
        var now = TestStores.Micros(start);
        var backAcrossASecond = 0;
        var denied = 0;
        for (var step = 0; step < 400; step++)
        {
            var previous = now;
            now += random.Next(4) == 0 ? -random.NextInt64(300_000) : random.NextInt64(200_000);
            backAcrossASecond += now / 1_000_000 < previous / 1_000_000 ? 1 : 0;

            var identity = identities[random.Next(identities.Length)];
            var batch = Enumerable.Range(0, limits.Length).OrderBy(_ => random.Next()).Take(1 + random.Next(2))
                .Select(index => new RateLimitCheck(limits[index], StoreKey.Create("back" + index, identity), random.Next(6) == 0 ? 2 : 1, false))
                .ToArray();
            var expected = new StoreOutcome[batch.Length];
            var actual = new StoreOutcome[batch.Length];
            memory.Decide(batch, expected, now);
            await redis.DecideAsync(batch, actual, now);
            for (var i = 0; i < batch.Length; i++)
            {
                var context = $"step {step}, check {i} ({batch[i].Limit}, cost {batch[i].Cost}) at {now}, previous {previous}";
                Assert.False(actual[i].IsStoreFailure, context);
                Assert.True(expected[i].Outcome == actual[i].Outcome, $"{context}: memory {expected[i].Outcome}, redis {actual[i].Outcome}");
                Assert.True(expected[i].Committed == actual[i].Committed, context + ": committed differs");
                denied += actual[i].Outcome.IsAllowed ? 0 : 1;
            }
        }

        Assert.True(backAcrossASecond > 5 && denied > 20, $"the sequence exercised too little: {backAcrossASecond} steps back across a second, {denied} denials");
        Assert.Equal(0, redis.Mismatches);
        Assert.Equal(0, redis.Failures);
    }

    [Theory]
    [InlineData(11, false)]
    [InlineData(12, true)]
    [InlineData(13, false)]
    public async Task Redis_and_memory_stores_decide_stages_alike(int seed, bool overLimitCache)
    {
        var limits = LimitSets["mixed"];
        var clock = TestStores.Clock(Start);
        var memory = new MemoryStore(timeProvider: clock);
        await using var redis = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = overLimitCache, clock);
        var random = new Random(seed);
        var identities = new[] { "alice", "bob", "carol" };
        var stopped = 0;
        var full = 0;
        var probes = 0;
        var probesDenied = 0;
        for (var step = 0; step < 300; step++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(random.Next(70)));
            var now = TestStores.Micros(clock.GetUtcNow());

            // Up to four stages (tiers), each of one or two identities with one or two rules.
            var checks = new List<RateLimitCheck>();
            var ends = new List<int>();
            var stages = 1 + random.Next(4);
            for (var stage = 0; stage < stages; stage++)
            {
                var groups = 1 + random.Next(2);
                foreach (var identity in identities.OrderBy(_ => random.Next()).Take(groups))
                {
                    foreach (var index in Enumerable.Range(0, limits.Length).OrderBy(_ => random.Next()).Take(1 + random.Next(2)))
                    {
                        // Now and then a probe (as an edge ban's): decided with its cost, never committed, its denial enforced.
                        var cost = random.Next(10) switch { 0 => 0L, 1 => 2L, _ => 1L };
                        var probe = random.Next(6) == 0;
                        checks.Add(new RateLimitCheck(limits[index], StoreKey.Create($"stage{stage}-rule{index}", identity), cost, random.Next(8) == 0) { IsProbe = probe });
                        probes += probe ? 1 : 0;
                    }
                }

                ends.Add(checks.Count);
            }

            var batch = checks.ToArray();
            var expected = new StoreOutcome[batch.Length];
            var actual = new StoreOutcome[batch.Length];
            var expectedStages = await memory.DecideStagesAsync(batch, ends.ToArray(), expected);
            var actualStages = await redis.DecideStagesAsync(batch, ends.ToArray(), actual, now);
            Assert.True(expectedStages == actualStages, $"step {step}: memory decided {expectedStages} stages, redis {actualStages}");
            var decided = ends[actualStages - 1];
            for (var i = 0; i < decided; i++)
            {
                var context = $"step {step}, check {i} ({batch[i].Limit}, cost {batch[i].Cost}, shadow {batch[i].IsShadow}, probe {batch[i].IsProbe}) at {now}";
                Assert.False(actual[i].IsStoreFailure, context);
                Assert.Equal(expected[i].Outcome, actual[i].Outcome);
                Assert.True(expected[i].Committed == actual[i].Committed, context + ": committed differs");
                Assert.True(!batch[i].IsProbe || (!actual[i].Committed && actual[i].LeaseId == 0), context + ": a probe committed");
                probesDenied += batch[i].IsProbe && !actual[i].Outcome.IsAllowed ? 1 : 0;
            }

            for (var i = decided; i < batch.Length; i++)
            {
                Assert.Equal(default, actual[i]);
            }

            if (actualStages < stages)
            {
                stopped++;
            }
            else if (stages > 1)
            {
                full++;
            }
        }

        Assert.True(stopped > 20 && full > 20, $"the sequence exercised too little: {stopped} stopped early, {full} went through every stage");
        Assert.True(probes > 50 && probesDenied > 5, $"the sequence probed too little: {probes} probes, {probesDenied} denied");
        Assert.Equal(0, redis.Mismatches);
        Assert.Equal(0, redis.Failures);
    }
}
