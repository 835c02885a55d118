using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>
/// A rejection by concurrency rules that queue, for a caller that waits (<see cref="RateLimitEngine.EvaluateQueuedAsync"/>):
/// the check whose key to wait on, the tier to decide again from, and what the earlier tiers of the same call hold
/// meanwhile (their leases, reservations, most constrained decision and delay). Allocated on that path only.
/// </summary>
internal sealed class QueuedRejection(RateLimitCheck check, RateLimitTier tier, RateLimitDecision before, int leasesBefore, int costsBefore, TimeSpan delayBefore)
{
    public RateLimitCheck Check { get; } = check;

    public RateLimitTier Tier { get; } = tier;

    public int LeasesBefore { get; } = leasesBefore;

    public int CostsBefore { get; } = costsBefore;

    public LeaseBag? Leases { get; set; }

    public CostBag? Costs { get; set; }

    public RateLimitDecision Shadow { get; set; }

    /// <summary>What the earlier tiers admitted, as a result of its own to combine with the next try's.</summary>
    public RateLimitResult Held => new(true, before, Shadow, Leases, -1, default, Costs, delayBefore);
}
