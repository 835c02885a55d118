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

    /// <summary>
    /// The interface's default staged decisions, through this store: one <see cref="DecideAsync"/> per stage, stopping
    /// after the first stage that rejects.
    /// </summary>
    protected ValueTask<int> DecideStagesInTurnAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        ((IRateLimitStore)new InTurn(this)).DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);

    /// <summary>
    /// This store without its <see cref="DecideStagesAsync"/> override, so that calling the interface member runs the
    /// interface's own default (a class cannot call a default interface method it overrides).
    /// </summary>
    private sealed class InTurn(DelegatingStore<TInner> store) : IRateLimitStore
    {
        public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            store.DecideAsync(checks, outcomes, cancellationToken);

        public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => store.TryDecide(checks, outcomes);

        public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            store.ReleaseAsync(check, leaseId, cancellationToken);
    }
}
