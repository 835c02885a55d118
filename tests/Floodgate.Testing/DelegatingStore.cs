using Floodgate.Stores;

namespace Floodgate.Testing;

/// <summary>
/// A test store around another that forwards every member of <see cref="IRateLimitStore"/> to it, so that a store
/// that counts, delays or changes some calls overrides only those and cannot forget the others.
/// </summary>
/// <remarks>
/// <see cref="DecideStagesAsync"/> forwards to the inner store's own, not to the interface's default, which would split
/// the inner store's one round trip into one per stage. A subclass whose <see cref="DecideAsync"/> changes decisions,
/// and whose staged decisions must go through that change, overrides <see cref="DecideStagesAsync"/> with
/// <see cref="DecideStagesInTurnAsync"/>.
/// </remarks>
/// <typeparam name="TInner">The inner store's type, for subclasses that call more than the interface on it.</typeparam>
public abstract class DelegatingStore<TInner> : IRateLimitStore
    where TInner : IRateLimitStore
{
    protected DelegatingStore(TInner inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        Inner = inner;
    }

    protected TInner Inner { get; }

    public virtual ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Inner.DecideAsync(checks, outcomes, cancellationToken);

    public virtual bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) =>
        Inner.TryDecide(checks, outcomes);

    public virtual ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);

    public virtual ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        Inner.ReleaseAsync(check, leaseId, cancellationToken);

    public virtual ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        Inner.RenewAsync(check, leaseId, cancellationToken);

    public virtual ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken = default) =>
        Inner.SettleAsync(check, delta, cancellationToken);

    /// <summary>
    /// The interface's default staged decisions, through this store: one <see cref="DecideAsync"/> per stage, stopping
    /// after the first stage that rejects.
    /// </summary>
    protected ValueTask<int> DecideStagesInTurnAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        StagedDecisions.DecideInTurnAsync(this, checks, stageEnds, outcomes, cancellationToken);
}
