using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis;

// Answers by the failure mode while Redis cannot: open, closed, or the local store on a replica's share of each limit.
public sealed partial class RedisStore
{
    /// <summary>The shortest retry-after a closed failure mode answers with, however soon the breaker probes.</summary>
    private const long ClosedRetryMicroseconds = 1_000_000;

    /// <summary>
    /// A replica's share of a gcra limit: the same amount over a period as many times longer, so the interval is the
    /// limit's times the replicas and the share is as exact as the limit (100k/s over 3 replicas is one request per 30 µs,
    /// where 33,333/s would round to 31 µs and admit 3 % less); Gcra accepts every such share of a limit it accepted. A
    /// period too long to multiply (a monthly limit over thousands of replicas) divides the amount instead, unchecked:
    /// the local fallback must answer during an outage, never throw.
    /// </summary>
    private static Limit GcraShare(Limit limit, int replicas)
    {
        var burst = Math.Max(1, limit.Burst / replicas);
        if (limit.Rate.PeriodMicroseconds <= Limit.MaxSpanMicroseconds / replicas && limit.Rate.UnitCount <= int.MaxValue / replicas)
        {
            return Limit.Gcra(new Rate(limit.Rate.Amount, limit.Rate.UnitCount * replicas, limit.Rate.Unit), burst);
        }

        return Limit.UncheckedGcra(new Rate(Math.Max(1, limit.Amount / replicas), limit.Rate.UnitCount, limit.Rate.Unit), burst);
    }

    internal static Limit DivideLimit(Limit limit, int replicas)
    {
        if (replicas == 1)
        {
            return limit;
        }

        var amount = Math.Max(1, limit.Amount / replicas);
        var rate = new Rate(amount, limit.Rate.UnitCount, limit.Rate.Unit);
        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra => GcraShare(limit, replicas),
            LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
            LimitAlgorithm.FixedWindow => Limit.FixedWindow(rate),
            LimitAlgorithm.Quota => Limit.Quota(rate, limit.Calendar),
            _ => Limit.Concurrency(amount, limit.LeaseTimeout),
        };
    }

    /// <summary>
    /// Answers a whole group by the failure mode: each check by its own (its rule's), or the store's. The group stays all
    /// or nothing: the checks answered locally are decided together, and only read (cost 0) when a closed check of the
    /// group denies the request.
    /// </summary>
    private void Fallback(Group group, ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes, Source[] sources)
    {
        Abandon(group, checks, sources);
        var members = group.Members;
        int open = 0, closed = 0, local = 0;
        long retry = 0;
        var closedDenies = false;
        foreach (var k in members)
        {
            switch (ModeOf(checks[k]))
            {
                case StoreFailureMode.Open:
                    outcomes[k] = new StoreOutcome(new LimitOutcome(true, checks[k].Limit.Amount, 0, 0), false, 0, true);
                    open++;
                    break;
                case StoreFailureMode.Closed:
                    retry = retry > 0 ? retry : Math.Max(_breakers.LastFor(group.Slot).RetryAfter(SteadyNow()), ClosedRetryMicroseconds);
                    outcomes[k] = new StoreOutcome(new LimitOutcome(false, 0, 0, retry), false, 0, true);
                    closedDenies |= !checks[k].IsShadow;
                    closed++;
                    break;
                default:
                    local++;
                    break;
            }
        }

        if (local > 0)
        {
            var localChecks = new RateLimitCheck[local];
            var answers = new StoreOutcome[local];
            var m = 0;
            foreach (var k in members)
            {
                if (ModeOf(checks[k]) == StoreFailureMode.Local)
                {
                    localChecks[m++] = checks[k] with
                    {
                        Limit = _localLimits.GetValue(checks[k].Limit, _divide),
                        Cost = closedDenies ? 0 : checks[k].Cost,
                    };
                }
            }

            _local.Decide(localChecks, answers);
            m = 0;
            foreach (var k in members)
            {
                if (ModeOf(checks[k]) == StoreFailureMode.Local)
                {
                    var answer = answers[m++];
                    outcomes[k] = answer with { IsStoreFailure = true, Committed = answer.Committed && !closedDenies };
                    if (answer.LeaseId != 0)
                    {
                        group.Hold(k, answer.LeaseId);
                    }
                }
            }
        }

        _metrics.CountFallbacks(open, "open");
        _metrics.CountFallbacks(closed, "closed");
        _metrics.CountFallbacks(local, "local");
    }

    /// <summary>The failure mode of one check: its rule's, or the store's.</summary>
    private StoreFailureMode ModeOf(in RateLimitCheck check) =>
        check.OnStoreFailure == StoreFailureMode.Default ? _options.FailureMode : check.OnStoreFailure;
}
