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
