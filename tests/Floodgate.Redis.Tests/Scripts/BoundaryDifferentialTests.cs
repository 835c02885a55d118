using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>
/// The script and the engine's math, compared exactly where a verdict turns: for every algorithm, the same requests go
/// through the MemoryStore (LimitMath) and the RedisStore (decide.lua on the real server) at explicit times chosen from
/// the last denial: the microsecond before the moment the cost would fit, that moment and the one after, the reset and
/// the window and period edges on either side, and (concurrency) each lease's expiry on either side. Any difference of
/// verdict, remaining, reset, retry-after, commit or lease fails the test, as does any decision where the script's
/// verdict differs from the engine's on the state the script read (which the store would only log).
/// </summary>
/// <remarks>
/// <see cref="DifferentialTests"/> moves time by random steps, which almost never land on a boundary: an off-by-one in a
/// comparison of the script (admitting a request one microsecond early) passes it. Here each time of interest is probed
/// in ascending order with <see cref="RateLimitCheck.IsProbe"/> (decided with its cost, never written), so every probe of
/// one step sees the same state; then a real decision lands on the moment the cost fits, the microsecond after it, or
/// past every time of interest, and the next step spends from there.
/// </remarks>
[Collection(RedisCollection.Name)]
public sealed class BoundaryDifferentialTests(RedisFixture fixture, ITestOutputHelper output)
{
    // Saturday 28 March 2026, 20:00 UTC: Paris changes to summer time during the first day, so a day quota in Paris
    // has a 23-hour day among its periods.
    private static readonly DateTimeOffset Start = new(2026, 3, 28, 20, 0, 0, TimeSpan.Zero);

    private const int Steps = 40;

    private static readonly Dictionary<string, Limit[]> LimitSets = new()
    {
        ["gcra"] =
        [
            Limit.Gcra(new Rate(10, 1, RateUnit.Second), 3),
            Limit.Gcra(new Rate(7, 3, RateUnit.Second), 1), // an interval rounded up: 428,572 µs
            Limit.Gcra(new Rate(300, 1, RateUnit.Minute), 5),
        ],
        ["sliding_window"] =
        [
            Limit.SlidingWindow(new Rate(3, 1, RateUnit.Second)),
            Limit.SlidingWindow(new Rate(7, 1, RateUnit.Second)),
            Limit.SlidingWindow(new Rate(20, 10, RateUnit.Second)),
        ],
        ["fixed_window"] =
        [
            Limit.FixedWindow(new Rate(4, 1, RateUnit.Second)),
            Limit.FixedWindow(new Rate(5, 2, RateUnit.Minute)),
        ],
        ["quota_rolling"] =
        [
            Limit.Quota(new Rate(3, 1, RateUnit.Hour), null),
            Limit.Quota(new Rate(4, 90, RateUnit.Second), null),
        ],
        ["quota_calendar"] =
        [
            Limit.Quota(new Rate(3, 1, RateUnit.Day), QuotaCalendar.ForTimeZone("Europe/Paris")),
            Limit.Quota(new Rate(4, 1, RateUnit.Week), QuotaCalendar.Utc),
            Limit.Quota(new Rate(2, 1, RateUnit.Month), QuotaCalendar.ForTimeZone("Europe/Paris")),
        ],
        ["sliding_log"] =
        [
            Limit.SlidingLog(new Rate(3, 1, RateUnit.Second)),
            Limit.SlidingLog(new Rate(7, 2, RateUnit.Second)),
            Limit.SlidingLog(new Rate(20, 10, RateUnit.Second)),
        ],
        ["leaky_bucket"] =
        [
            Limit.LeakyBucket(new Rate(10, 1, RateUnit.Second), 3),
            Limit.LeakyBucket(new Rate(7, 3, RateUnit.Second), 1),
        ],
        ["concurrency"] =
        [
            Limit.Concurrency(2, TimeSpan.FromMilliseconds(300)), // retry-after is the earliest expiry
            Limit.Concurrency(3, TimeSpan.FromSeconds(2)), // retry-after is capped at a second, before any expiry
        ],
    };

    public static TheoryData<string> Scenarios() => [.. LimitSets.Keys];

    [Theory]
    [MemberData(nameof(Scenarios))]
    public async Task Redis_and_memory_stores_decide_alike_on_every_boundary(string scenario)
    {
        var clock = TestStores.Clock(Start);
        var memory = new MemoryStore(timeProvider: clock);

        // No over-limit cache: every decision, probes included, is the script's.
        await using var redis = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false, clock);
        var limits = LimitSets[scenario];
        for (var index = 0; index < limits.Length; index++)
        {
            var walk = new Walk(memory, redis, limits[index], StoreKey.Create("boundary" + index, "alice"), new Random(31 * index + scenario.Length));
            await walk.RunAsync(TestStores.Micros(Start), Steps);

            // The walk must have landed on boundaries: a denial one microsecond before an admission of the same cost on
            // the same state, again and again; and it must have spent from the limit often.
            var context = $"{limits[index]}: {walk.Flips} denied-then-admitted pairs one microsecond apart, {walk.Admitted} admitted, {walk.Denied} denied, {walk.Decisions} decisions";
            output.WriteLine(context);
            Assert.True(walk.Flips >= Steps / 4, "the walk landed on too few boundaries: " + context);
            Assert.True(walk.Admitted >= Steps / 2 && walk.Denied >= Steps, "the walk exercised too little: " + context);
        }

        Assert.Equal(0, redis.Mismatches);
        Assert.Equal(0, redis.Failures);
    }

    /// <summary>One key of one limit, walked from boundary to boundary in both stores.</summary>
    private sealed class Walk(MemoryStore memory, RedisStore redis, Limit limit, StoreKey key, Random random)
    {
        private static readonly long[] Around = [-1, 0, 1];

        private readonly List<(RateLimitCheck Check, long Memory, long Redis, long Expiry)> _leases = [];

        public int Flips { get; private set; }

        public int Admitted { get; private set; }

        public int Denied { get; private set; }

        public int Decisions { get; private set; }

        public async Task RunAsync(long now, int steps)
        {
            for (var step = 0; step < steps; step++)
            {
                // Spend at now until denied, at one cost: mostly 1, at times 2, now and then more than can ever fit.
                var cost = random.Next(8) switch
                {
                    0 or 1 => 2L,
                    2 when step % 5 == 0 => limit.Burst + 1,
                    _ => 1L,
                };
                var check = new RateLimitCheck(limit, key, cost, false);
                var last = default(StoreOutcome);
                for (var attempt = 0; attempt <= limit.Burst + 1; attempt++)
                {
                    last = await DecideAsync(check, now, $"step {step}, spending at {now}");
                    if (!last.Outcome.IsAllowed)
                    {
                        break;
                    }
                }

                var retry = last.Outcome.RetryAfterMicroseconds;
                if (last.Outcome.IsAllowed || retry == LimitOutcome.Never)
                {
                    // Never fits (cost above the limit): the state is unchanged; move on a little.
                    now += 1 + random.NextInt64(limit.PeriodMicroseconds / 3);
                    continue;
                }

                var allowAt = now + retry;
                var times = new SortedSet<long>();
                foreach (var d in Around)
                {
                    times.Add(allowAt + d);
                    if (last.Outcome.ResetAfterMicroseconds > 0)
                    {
                        times.Add(now + last.Outcome.ResetAfterMicroseconds + d);
                    }

                    if (limit.Algorithm is LimitAlgorithm.FixedWindow or LimitAlgorithm.SlidingWindow)
                    {
                        // The end of this window, and (sliding) of the next, when this window stops counting at all.
                        var windowStart = now - (now % limit.PeriodMicroseconds);
                        times.Add(windowStart + limit.PeriodMicroseconds + d);
                        times.Add(windowStart + (2 * limit.PeriodMicroseconds) + d);
                    }

                    foreach (var lease in _leases)
                    {
                        times.Add(lease.Expiry + d);
                    }
                }

                // Where the real decision lands: on the moment the cost fits, the microsecond after, or past every time
                // of interest (the state's reset, a window or lease gone).
                var target = (step % 3) switch
                {
                    0 => allowAt,
                    1 => allowAt + 1,
                    _ => times.Max,
                };

                var verdicts = new Dictionary<long, bool>();
                foreach (var time in times)
                {
                    if (time < now || time > target)
                    {
                        continue;
                    }

                    var label = $"step {step}, cost {cost}, at allowAt{Offset(time - allowAt)} (denied at {now} with retry-after {retry})";
                    var probe = await DecideAsync(check with { IsProbe = true }, time, "probe " + label);
                    verdicts[time] = probe.Outcome.IsAllowed;
                    if (probe.Outcome.IsAllowed && verdicts.TryGetValue(time - 1, out var before) && !before)
                    {
                        Flips++;
                    }

                    if (time == allowAt - 1 && time >= now)
                    {
                        // A real decision where the cost does not fit yet: denied, nothing written.
                        await DecideAsync(check, time, "decision " + label);
                    }
                }

                now = target;
                await DecideAsync(check, now, $"step {step}, decision at allowAt{Offset(now - allowAt)}");

                // Some leases go back, in both stores; those past their expiry are forgotten by both already.
                _leases.RemoveAll(l => l.Expiry <= now);
                while (_leases.Count > 0 && random.Next(3) == 0)
                {
                    var pick = random.Next(_leases.Count);
                    var lease = _leases[pick];
                    _leases.RemoveAt(pick);
                    // Released with the check that took it: the Redis store names a lease by its id and permits.
                    await memory.ReleaseAsync(lease.Check, lease.Memory);
                    await redis.ReleaseAsync(lease.Check, lease.Redis);
                }
            }
        }

        private async Task<StoreOutcome> DecideAsync(RateLimitCheck check, long now, string context)
        {
            var expected = new StoreOutcome[1];
            var actual = new StoreOutcome[1];
            memory.Decide([check], expected, now);
            await redis.DecideAsync(new[] { check }, actual, now);
            context = $"{limit}, {context}, now {now}";
            Assert.False(actual[0].IsStoreFailure, context + ": the Redis store failed");
            Assert.True(redis.Mismatches == 0, context + ": the script's verdict differs from the engine's on the state it read");
            Assert.True(expected[0].Outcome == actual[0].Outcome, $"{context}: memory {expected[0].Outcome}, redis {actual[0].Outcome}");
            Assert.True(expected[0].Committed == actual[0].Committed, $"{context}: committed {expected[0].Committed} in memory, {actual[0].Committed} in redis");
            Assert.True((expected[0].LeaseId != 0) == (actual[0].LeaseId != 0), context + ": one store granted a lease, the other did not");
            if (actual[0].LeaseId != 0)
            {
                _leases.Add((check, expected[0].LeaseId, actual[0].LeaseId, now + limit.LeaseTimeoutMicroseconds));
            }

            Decisions++;
            if (!check.IsProbe)
            {
                if (actual[0].Outcome.IsAllowed)
                {
                    Admitted++;
                }
                else
                {
                    Denied++;
                }
            }

            return actual[0];
        }

        private static string Offset(long offset) => offset switch
        {
            0 => string.Empty,
            > 0 => "+" + offset,
            _ => offset.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
    }
}
