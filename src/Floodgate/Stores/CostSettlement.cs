namespace Floodgate.Stores;

/// <summary>What a store did when asked to settle a cost (<see cref="IRateLimitStore.SettleAsync"/>).</summary>
public enum CostSettlement
{
    /// <summary>
    /// The store cannot settle (a store written before settlement existed, which keeps the interface's default): the
    /// reservation stands as the request's cost.
    /// </summary>
    NotSupported = 0,

    /// <summary>The key's state was corrected.</summary>
    Settled,

    /// <summary>The store could not be asked (unreachable, timed out, its circuit breaker open): the reservation stands.</summary>
    Failed,
}
