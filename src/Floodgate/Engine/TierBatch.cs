using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>
/// The checks of one tier for one request, in arrays reused across requests: each thread keeps one batch, and a
/// request that goes asynchronous takes the batch with it, so nothing is shared while in use.
/// </summary>
internal sealed class TierBatch
{
    [ThreadStatic]
    private static TierBatch? t_cached;

    private TierBatch(int capacity)
    {
        Checks = new RateLimitCheck[capacity];
        Outcomes = new StoreOutcome[capacity];
        Rules = new RateLimitRule[capacity];
    }

    public RateLimitCheck[] Checks { get; }

    public StoreOutcome[] Outcomes { get; }

    public RateLimitRule[] Rules { get; }

    public int Count { get; set; }

    public static TierBatch Rent(int capacity)
    {
        var batch = t_cached;
        if (batch is not null && batch.Checks.Length >= capacity)
        {
            t_cached = null;
            return batch;
        }

        return new TierBatch(Math.Max(capacity, 8));
    }

    public static void Return(TierBatch batch)
    {
        Array.Clear(batch.Checks, 0, batch.Count);
        Array.Clear(batch.Rules, 0, batch.Count);
        batch.Count = 0;
        t_cached = batch;
    }

    public void Add(RateLimitRule rule, in RateLimitCheck check)
    {
        Rules[Count] = rule;
        Checks[Count] = check;
        Count++;
    }
}
