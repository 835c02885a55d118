using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>What the engine decided for one request over one or more tiers.</summary>
/// <remarks>
/// When the result holds concurrency leases, pass it to <see cref="RateLimitEngine.ReleaseAsync"/> when the request
/// ends; a lease that is never released frees itself after its lease timeout. A request that may outlive that timeout
/// (a WebSocket, a stream) keeps its leases with <see cref="RateLimitEngine.RenewLeases"/> until it is released.
/// </remarks>
public readonly struct RateLimitResult
{
    // One more than the index, so that default(RateLimitResult) names no pre-check.
    private readonly int _deniedPreCheck;

    internal RateLimitResult(bool isAllowed, in RateLimitDecision decision, in RateLimitDecision shadowRejection, LeaseBag? leases, int deniedPreCheck = -1, in StoreOutcome preCheckOutcome = default, CostBag? costs = null, TimeSpan delay = default)
    {
        Delay = delay;
        Costs = costs;
        IsAllowed = isAllowed;
        Decision = decision;
        ShadowRejection = shadowRejection;
        Leases = leases;
        _deniedPreCheck = deniedPreCheck + 1;
        PreCheckOutcome = preCheckOutcome;
    }

    /// <summary>Whether the request may go on.</summary>
    public bool IsAllowed { get; }

    /// <summary>
    /// When allowed, how long the request waits before it goes on: the longest slot wait of the enforced leaky bucket
    /// queues that admitted it (<see cref="Limits.Limit.MaxDelay"/>); <see cref="TimeSpan.Zero"/> otherwise. The front door
    /// waits it out (the ASP.NET Core middleware does, without holding a thread).
    /// </summary>
    public TimeSpan Delay { get; }

    /// <summary>
    /// When a pre-check passed to <see cref="RateLimitEngine.EvaluateAsync(Rules.IRequestContext, Rules.RateLimitTier, Rules.RateLimitTier, ReadOnlyMemory{RateLimitCheck}, CancellationToken)"/>
    /// rejected the request, its index among the pre-checks (the first denied enforced one), which maps straight back to
    /// whatever the caller made it for; otherwise -1. A request a pre-check rejects has no tier decided:
    /// <see cref="Decision"/> names no rule.
    /// </summary>
    public int DeniedPreCheck => _deniedPreCheck - 1;

    /// <summary>The store's outcome for the pre-check that rejected the request (its retry-after, whether the store failed); default when none did.</summary>
    public StoreOutcome PreCheckOutcome { get; }

    /// <summary>
    /// When rejected, the rule that rejected (of several in the rejecting tier, the one with the longest retry);
    /// when allowed, the most constrained enforced rule, whose state the response headers show. Its
    /// <see cref="RateLimitDecision.Rule"/> is <see langword="null"/> when no enforced rule applied.
    /// </summary>
    public RateLimitDecision Decision { get; }

    /// <summary>The first shadow rule that would have rejected; its <see cref="RateLimitDecision.Rule"/> is <see langword="null"/> when none.</summary>
    public RateLimitDecision ShadowRejection { get; }

    /// <summary>
    /// Whether the rejection should be answered 503 rather than 429: service and global capacity, and any rule denied by a
    /// <c>closed</c> failure mode while the store is unreachable (an outage, not the caller going over a limit).
    /// </summary>
    public bool IsCapacityRejection => !IsAllowed && (_deniedPreCheck > 0
        ? PreCheckOutcome.IsStoreFailure
        : Decision.IsStoreFailure || Decision.Tier is Rules.RateLimitTier.Service or Rules.RateLimitTier.Global);

    /// <summary>Whether the result holds concurrency leases to release.</summary>
    public bool HasLeases => Leases is not null;

    internal LeaseBag? Leases { get; }

    /// <summary>
    /// When rejected by concurrency rules that queue, and the caller asked to wait (<see cref="RateLimitEngine.EvaluateQueuedAsync"/>):
    /// where to wait, and what the earlier tiers hold meanwhile.
    /// </summary>
    internal QueuedRejection? Wait { get; init; }

    /// <summary>
    /// Whether the result holds cost reservations (rules with <see cref="Rules.RateLimitRule.Costs"/>) to settle with
    /// <see cref="RateLimitEngine.SettleAsync"/> when the request ends.
    /// </summary>
    public bool HasReservations => Costs is not null;

    internal CostBag? Costs { get; }

    /// <summary>Combines the results of two evaluations of one request, such as the edge tier and then the others.</summary>
    /// <remarks>
    /// A rejected evaluation has refunded its own reservations already; when the second rejects, the combined result keeps
    /// the first's, which the caller settles as <see cref="Costs.RequestCompletion.NotServed"/> (refunded).
    /// </remarks>
    public static RateLimitResult Combine(in RateLimitResult first, in RateLimitResult second)
    {
        if (!first.IsAllowed)
        {
            return first;
        }

        var decision = second.IsAllowed ? RateLimitEngine.MoreConstrained(first.Decision, second.Decision) : second.Decision;
        var shadow = first.ShadowRejection.Rule is not null ? first.ShadowRejection : second.ShadowRejection;
        var delay = !second.IsAllowed ? TimeSpan.Zero : first.Delay > second.Delay ? first.Delay : second.Delay;
        return new RateLimitResult(second.IsAllowed, decision, shadow, LeaseBag.Merge(first.Leases, second.Leases), second.DeniedPreCheck, second.PreCheckOutcome, CostBag.Merge(first.Costs, second.Costs), delay);
    }
}
