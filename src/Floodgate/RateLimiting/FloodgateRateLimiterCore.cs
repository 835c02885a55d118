using System.Threading.RateLimiting;
using Floodgate.Stores;

namespace Floodgate.RateLimiting;

/// <summary>What both adapters share: one check against a store, turned into a lease, and counted.</summary>
internal sealed class FloodgateRateLimiterCore(IRateLimitStore store)
{
    private long _successes;
    private long _failures;

    /// <summary>
    /// The check for <paramref name="permitCount"/> permits of <paramref name="costPerPermit"/> each. A count of 0 asks,
    /// as it does of the built-in limiters, whether at least one permit is available: a probe of one permit, which
    /// consumes nothing (and takes no concurrency lease).
    /// </summary>
    public static RateLimitCheck ForPermits(in RateLimitCheck check, long costPerPermit, int permitCount) =>
        permitCount == 0
            ? check with { Cost = costPerPermit, IsProbe = true }
            : check with { Cost = checked(costPerPermit * permitCount), IsProbe = false };

    public RateLimitLease AttemptAcquire(in RateLimitCheck check)
    {
        Span<RateLimitCheck> checks = [check];
        Span<StoreOutcome> outcomes = stackalloc StoreOutcome[1];

        // Never wait for I/O here: a store that cannot answer locally consumed nothing, and AcquireAsync will decide.
        return store.TryDecide(checks, outcomes) ? ToLease(check, outcomes[0]) : FloodgateLease.Pending;
    }

    public async ValueTask<RateLimitLease> AcquireAsync(RateLimitCheck check, CancellationToken cancellationToken)
    {
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes, cancellationToken).ConfigureAwait(false);
        return ToLease(check, outcomes[0]);
    }

    public RateLimiterStatistics Statistics(in RateLimitCheck check)
    {
        Span<RateLimitCheck> probe = [check with { Cost = 0 }];
        Span<StoreOutcome> outcomes = stackalloc StoreOutcome[1];
        return new RateLimiterStatistics
        {
            CurrentAvailablePermits = store.TryDecide(probe, outcomes) ? outcomes[0].Outcome.Remaining : 0,
            CurrentQueuedCount = 0,
            TotalSuccessfulLeases = Volatile.Read(ref _successes),
            TotalFailedLeases = Volatile.Read(ref _failures),
        };
    }

    private RateLimitLease ToLease(in RateLimitCheck check, in StoreOutcome outcome)
    {
        // A probe (a request for 0 permits) is acquired when it fits, though it never commits.
        if (outcome.Outcome.IsAllowed && (outcome.Committed || check.IsProbe))
        {
            Interlocked.Increment(ref _successes);
            return outcome.LeaseId != 0 ? FloodgateLease.Holding(store, check, outcome.LeaseId) : FloodgateLease.Acquired;
        }

        Interlocked.Increment(ref _failures);
        return FloodgateLease.Rejected(new CheckDecision(check.Limit, outcome.Outcome, outcome.IsStoreFailure));
    }
}
