using Floodgate.Keys;
using Floodgate.Limits;

namespace Floodgate.Stores;

/// <summary>One key to decide against one limit, as a store receives it.</summary>
/// <param name="Limit">The limit.</param>
/// <param name="Key">The key.</param>
/// <param name="Cost">The cost, 0 or more. A cost of 0 reads the state and consumes nothing.</param>
/// <param name="IsShadow">
/// Whether the check only observes: it is counted when it fits, but when it does not fit it never stops the other
/// checks of its identity from committing.
/// </param>
public readonly record struct RateLimitCheck(Limit Limit, StoreKey Key, long Cost, bool IsShadow)
{
    /// <summary>How a remote store answers this check while it cannot be reached; by default as the store is configured.</summary>
    public StoreFailureMode OnStoreFailure { get; init; }

    /// <summary>
    /// Whether the check only asks whether its <see cref="Cost"/> would fit, without spending it: it is decided exactly as
    /// with its cost but never commits (the key's state is untouched, <see cref="StoreOutcome.Committed"/> is
    /// <see langword="false"/>, no lease is taken). Its denial, unless it is <see cref="IsShadow"/>, denies its identity's
    /// other checks and stops a staged decision like any other denial. An edge rule's ban is probed this way: is the IP's
    /// ban bucket unable to take one more?
    /// </summary>
    public bool IsProbe { get; init; }

    /// <summary>
    /// Whether the check is charged its <see cref="Cost"/> whether or not it fits, as envoyproxy/ratelimit's counters
    /// are: a denied check pushes the key's state past the limit (<see cref="Algorithms.LimitMath.Settle"/> of its cost),
    /// where it stays until it refills, so a later check, even of cost 0, is denied meanwhile. It commits whatever the other checks
    /// of its identity decide, and its own denial still denies them unless it <see cref="IsShadow"/>. It is decided by the
    /// store (never answered from a Redis store's over-limit cache or leased slices); a probe is never charged, and a
    /// concurrency check takes a lease only when granted.
    /// </summary>
    public bool IsAlwaysCharged { get; init; }
}
