using Floodgate.Keys;

namespace Floodgate.Stores;

/// <summary>
/// Keeps the state of every key and decides checks against it. The in-memory store is the default; a Redis store
/// shares state between replicas.
/// </summary>
/// <remarks>
/// <para>
/// A store decides a batch in one call so that a remote store needs one round trip for a whole tier. The checks of
/// one batch that share an <see cref="StoreKey.Identity"/> are atomic: if any enforced (non-shadow) check among
/// them is denied, none of them consumes anything. Checks of different identities are decided independently.
/// </para>
/// <para>
/// Every store honours <see cref="RateLimitCheck.IsProbe"/> on every path (single checks, groups, stages, concurrency,
/// failure modes): a probe is decided with its cost but never commits, and its denial counts as an enforced check's
/// unless the probe is also a shadow.
/// </para>
/// <para>
/// Implementations never throw for a store outage: they answer by their failure policy and flag the outcome with
/// <see cref="StoreOutcome.IsStoreFailure"/>. When they can answer without waiting, the returned task is already
/// complete; the in-memory store always completes synchronously and allocates nothing for an existing key.
/// </para>
/// <para>
/// Writing a store: implement <see cref="DecideAsync"/>, <see cref="TryDecide"/> and <see cref="ReleaseAsync"/>, and
/// <see cref="DecideStagesAsync"/> when the store can decide several stages at once (a remote store, in one round trip),
/// and <see cref="RenewAsync"/> so that a lease lives as long as its request (a WebSocket, a stream) rather than its
/// timeout. A store that wraps another (to time, count or switch it) forwards every one of these members.
/// Keep each key's <see cref="Algorithms.LimitState"/> (or, for concurrency, its leases) and decide with
/// <see cref="Algorithms.LimitMath"/>, so the store answers exactly as the in-memory store does;
/// <see cref="StagedDecisions"/> checks a staged call's arguments and tells when a stage stops the next, and
/// <see cref="ReplicaShare"/> gives each replica its share of a limit for <see cref="StoreFailureMode.Local"/> answers.
/// </para>
/// </remarks>
public interface IRateLimitStore
{
    /// <summary>Decides <paramref name="checks"/>, writing one outcome per check, in order, into <paramref name="outcomes"/>.</summary>
    /// <param name="checks">The checks.</param>
    /// <param name="outcomes">At least as long as <paramref name="checks"/>.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default);

    /// <summary>
    /// Decides <paramref name="checks"/> only if the store can answer without waiting for I/O, for callers that must
    /// never block, such as <c>RateLimiter.AttemptAcquire</c>.
    /// </summary>
    /// <returns>
    /// <see langword="true"/> with every outcome written; or <see langword="false"/>, having consumed nothing, when an
    /// answer needs a round trip.
    /// </returns>
    bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes);

    /// <summary>
    /// Decides checks in stages, in order, the way the engine evaluates tiers: a stage is decided only when no enforced
    /// (non-shadow) check of an earlier stage was denied, so a rejecting stage spares the later ones. Within a stage the
    /// rules of <see cref="DecideAsync"/> hold.
    /// </summary>
    /// <remarks>
    /// The default implementation calls <see cref="DecideAsync"/> once per stage. A remote store overrides it to decide
    /// every stage in one round trip, so a store that wraps another (to time or count its calls) must forward this
    /// method too: the default would split the inner store's one round trip into one per stage.
    /// </remarks>
    /// <param name="checks">The checks of every stage, stage after stage.</param>
    /// <param name="stageEnds">
    /// For each stage, the index in <paramref name="checks"/> just past its last check: increasing, each stage non-empty,
    /// the last equal to the number of checks.
    /// </param>
    /// <param name="outcomes">At least as long as <paramref name="checks"/>.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>
    /// How many stages were decided: every stage, or the stages up to and including the first with a denied enforced
    /// check. Outcomes of the stages after it are not written and nothing of them is consumed.
    /// </returns>
    /// <exception cref="ArgumentException">The stages do not partition the checks.</exception>
    ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        StagedDecisions.DecideInTurnAsync(this, checks, stageEnds, outcomes, cancellationToken);

    /// <summary>Releases a concurrency lease before its timeout. Releasing a lease twice, or an expired one, does nothing.</summary>
    /// <param name="check">The check that took the lease.</param>
    /// <param name="leaseId">The lease, from <see cref="StoreOutcome.LeaseId"/>.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Renews a concurrency lease still held, so that it expires one lease timeout (<see cref="Limits.Limit.LeaseTimeout"/>
    /// of <paramref name="check"/>) from the store's now, or later if it already does: a lease is never shortened. A lease
    /// that is not held (released, expired, never granted) is not taken again, even when its permit is free: the answer
    /// is <see cref="LeaseRenewal.NotHeld"/> and nothing changes.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The engine renews the leases of requests that are still running (<see cref="Engine.RateLimitEngine.RenewLeases"/>)
    /// at about a third of their timeout, so a lease lives as long as its request and, once its process is gone, at most
    /// one timeout longer. Like a decision, a renewal never throws for an outage: it answers <see cref="LeaseRenewal.Failed"/>.
    /// </para>
    /// <para>
    /// The default answers <see cref="LeaseRenewal.NotSupported"/> without doing anything, so a store written before
    /// renewal existed works as it did: its leases end at their timeout. A store that wraps another must forward this
    /// method too, or the leases of the store it wraps would never be renewed.
    /// </para>
    /// </remarks>
    /// <param name="check">The check that took the lease.</param>
    /// <param name="leaseId">The lease, from <see cref="StoreOutcome.LeaseId"/>.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>What the store did.</returns>
    ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        new(LeaseRenewal.NotSupported);

    /// <summary>
    /// Corrects the key of <paramref name="check"/> by <paramref name="delta"/> units once a request's real cost is known
    /// (<see cref="Algorithms.LimitMath.Settle"/>): a refund when negative, an extra charge when positive, which may
    /// overdraw the key. Never refused, and never a lease: a concurrency check is not settled, nor a sliding_log check.
    /// </summary>
    /// <remarks>
    /// The default answers <see cref="CostSettlement.NotSupported"/> without doing anything, so a store written before
    /// settlement existed works as it did: a reservation stands as the cost. A store that wraps another must forward this
    /// method too. Like a decision, a settlement never throws for an outage: it answers <see cref="CostSettlement.Failed"/>.
    /// </remarks>
    /// <param name="check">The check that reserved the cost (its <see cref="RateLimitCheck.Cost"/> is not read).</param>
    /// <param name="delta">The real cost minus the cost reserved.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>What the store did.</returns>
    ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken = default) =>
        new(CostSettlement.NotSupported);
}
