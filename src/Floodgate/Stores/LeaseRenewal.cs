namespace Floodgate.Stores;

/// <summary>What a store did when asked to renew a concurrency lease (<see cref="IRateLimitStore.RenewAsync"/>).</summary>
public enum LeaseRenewal
{
    /// <summary>
    /// The store cannot renew leases (a store written before renewal existed, which keeps the interface's default): the
    /// lease frees itself at its timeout, as it always did. The caller stops asking.
    /// </summary>
    NotSupported = 0,

    /// <summary>The lease is held and now expires one lease timeout from the store's now, or later if it already did.</summary>
    Renewed,

    /// <summary>
    /// The lease is not held (released, expired, evicted, or never granted by this store) and nothing changed: a renewal
    /// never brings a lease back, since its permit may have gone to another request since.
    /// </summary>
    NotHeld,

    /// <summary>The store could not be asked (unreachable, timed out, its circuit breaker open): whether the lease is held is unknown.</summary>
    Failed,
}
