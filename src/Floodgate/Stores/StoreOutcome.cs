using Floodgate.Algorithms;

namespace Floodgate.Stores;

/// <summary>What a store decided for one check.</summary>
/// <param name="Outcome">The algorithm's outcome. When another enforced check of the same identity was denied, the
/// check was not committed even if it fit on its own; <see cref="Committed"/> says which.</param>
/// <param name="Committed">Whether the check consumed its cost (or, for concurrency, holds a lease).</param>
/// <param name="LeaseId">For an allowed concurrency check, the lease to release when the request ends; otherwise 0.</param>
/// <param name="IsStoreFailure">Whether the store could not be reached and the outcome comes from its failure policy.</param>
public readonly record struct StoreOutcome(LimitOutcome Outcome, bool Committed, long LeaseId, bool IsStoreFailure = false);
