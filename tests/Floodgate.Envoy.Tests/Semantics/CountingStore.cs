using Floodgate.Stores;

namespace Floodgate.Envoy.Tests;

/// <summary>A store that counts the checks it is asked to decide, around a real store.</summary>
internal sealed class CountingStore(IRateLimitStore inner) : DelegatingStore<IRateLimitStore>(inner)
{
    private int _checks;
    private int _calls;

    public int Checks => Volatile.Read(ref _checks);

    public int Calls => Volatile.Read(ref _calls);

    public override ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        Interlocked.Add(ref _checks, checks.Length);
        Interlocked.Increment(ref _calls);
        return Inner.DecideAsync(checks, outcomes, cancellationToken);
    }

    // Every stage in one call, as the inner store decides them.
    public override ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        Interlocked.Add(ref _checks, checks.Length);
        Interlocked.Increment(ref _calls);
        return Inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);
    }
}
