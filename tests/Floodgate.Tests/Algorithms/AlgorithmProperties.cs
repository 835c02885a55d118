using FsCheck.Xunit;
using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Tests.Algorithms;

/// <summary>
/// Properties over arbitrary request sequences. FsCheck draws the limit and a seed; the seed drives the sequence, so a
/// failure shrinks to a small, reproducible case.
/// </summary>
public sealed class AlgorithmProperties
{
    private const long Second = 1_000_000;
    private const long T0 = 1_800_000_000L * Second;

    [Property(MaxTest = 300)]
    public bool Gcra_never_admits_more_than_amount_plus_burst_in_any_window_of_one_period(byte amountSeed, byte burstSeed, byte periodSeed, int seed)
    {
        var amount = 1 + (amountSeed % 40);
        var burst = 1 + (burstSeed % 40);
        var period = (1 + (periodSeed % 10)) * Second;
        var limit = Limit.Gcra(new Rate(amount, (int)(period / Second), RateUnit.Second), burst);
        var admitted = Run(limit, seed, period, maxCost: 3);
        return MaxInAnyWindow(admitted, period) <= amount + burst;
    }

    [Property(MaxTest = 300)]
    public bool Fixed_window_admits_exactly_the_limit_per_window_when_demand_exceeds_it(byte amountSeed, int seed)
    {
        var amount = 1 + (amountSeed % 30);
        var limit = Limit.FixedWindow(new Rate(amount, 1, RateUnit.Second));
        var random = new Random(seed);
        var state = default(LimitState);
        for (var window = 0; window < 5; window++)
        {
            var start = T0 + (window * Second);
            var admitted = 0;

            // Demand: at least amount + 1 requests spread over the window, in time order.
            var demand = amount + 1 + random.Next(3 * amount);
            var times = Enumerable.Range(0, demand).Select(_ => start + random.NextInt64(Second)).Order().ToArray();
            foreach (var time in times)
            {
                if (LimitMath.Decide(limit, state, time, 1, out state).IsAllowed)
                {
                    admitted++;
                }
            }

            if (admitted != amount)
            {
                return false;
            }
        }

        return true;
    }

    [Property(MaxTest = 300)]
    public bool Sliding_window_stays_within_its_documented_bound(byte amountSeed, int seed)
    {
        // Documented: at most the amount in any window aligned to the period, at most twice the amount in any sliding
        // window of one period.
        var amount = 1 + (amountSeed % 30);
        var limit = Limit.SlidingWindow(new Rate(amount, 1, RateUnit.Second));
        var admitted = Run(limit, seed, Second, maxCost: 2);
        var perAligned = admitted.GroupBy(a => a.Time / Second).Select(g => g.Sum(a => a.Cost));
        return perAligned.All(sum => sum <= amount) && MaxInAnyWindow(admitted, Second) <= 2 * amount;
    }

    [Property(MaxTest = 200)]
    public bool Every_algorithm_leaves_the_state_alone_on_rejection_and_on_probes(byte amountSeed, byte algorithmSeed, int seed)
    {
        var rate = new Rate(1 + (amountSeed % 20), 1, RateUnit.Second);
        Limit limit = (algorithmSeed % 4) switch
        {
            0 => Limit.Gcra(rate),
            1 => Limit.FixedWindow(rate),
            2 => Limit.SlidingWindow(rate),
            _ => Limit.Quota(rate, calendar: null),
        };
        var random = new Random(seed);
        var state = default(LimitState);
        var now = T0;
        for (var i = 0; i < 200; i++)
        {
            now += random.NextInt64(Second / 4);
            var cost = random.Next(4);
            var before = state;
            var outcome = LimitMath.Decide(limit, before, now, cost, out state);
            if ((!outcome.IsAllowed || cost == 0) && state != before)
            {
                return false;
            }

            if (outcome.Remaining < 0 || outcome.RetryAfterMicroseconds < LimitOutcome.Never || (outcome.IsAllowed && outcome.RetryAfterMicroseconds != 0))
            {
                return false;
            }
        }

        return true;
    }

    private static List<(long Time, long Cost)> Run(Limit limit, int seed, long period, int maxCost)
    {
        var random = new Random(seed);
        var admitted = new List<(long, long)>();
        var state = default(LimitState);
        var now = T0 + random.NextInt64(period);
        var meanGap = period / Math.Max(1, limit.Amount);
        for (var i = 0; i < 400; i++)
        {
            // Bursts (gap 0) mixed with gaps up to three intervals.
            now += random.Next(3) == 0 ? 0 : random.NextInt64(3 * meanGap);
            var cost = 1 + random.Next(maxCost);
            if (LimitMath.Decide(limit, state, now, cost, out state).IsAllowed)
            {
                admitted.Add((now, cost));
            }
        }

        return admitted;
    }

    private static long MaxInAnyWindow(List<(long Time, long Cost)> admitted, long period)
    {
        long max = 0;
        for (var i = 0; i < admitted.Count; i++)
        {
            long sum = 0;
            for (var j = i; j < admitted.Count && admitted[j].Time <= admitted[i].Time + period; j++)
            {
                sum += admitted[j].Cost;
            }

            max = Math.Max(max, sum);
        }

        return max;
    }
}
