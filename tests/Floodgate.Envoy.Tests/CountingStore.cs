using Floodgate.Stores;

namespace Floodgate.Envoy.Tests;

/// <summary>A store that counts the checks it is asked to decide, around a real store.</summary>
internal sealed class CountingStore(IRateLimitStore inner) : IRateLimitStore
{
    private int _checks;
    private int _calls;

    public int Checks => Volatile.Read(ref _checks);

    public int Calls => Volatile.Read(ref _calls);

    public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        Interlocked.Add(ref _checks, checks.Length);
        Interlocked.Increment(ref _calls);
        return inner.DecideAsync(checks, outcomes, cancellationToken);
    }

    public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => inner.TryDecide(checks, outcomes);

    public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        inner.ReleaseAsync(check, leaseId, cancellationToken);

    public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        inner.RenewAsync(check, leaseId, cancellationToken);
}
