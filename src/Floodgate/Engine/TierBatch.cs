using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>
/// The checks of one request, tier after tier (a stage per tier with matching rules, after a stage of the caller's
/// pre-checks if it passed any), in arrays reused across
/// requests: each thread keeps one batch, and a request that goes asynchronous takes the batch with it, so nothing is
/// shared while in use.
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

    /// <summary>How many pre-checks open the batch, as its first stage; they have no rule.</summary>
    public int PreCheckCount { get; private set; }

    /// <summary>For each stage, the index just past its last check.</summary>
    public int[] StageEnds { get; } = new int[TierCount + 1];

    public int StageCount { get; private set; }

    private const int TierCount = (int)RateLimitTier.Global + 1;

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
        batch.PreCheckCount = 0;
        batch.StageCount = 0;
        t_cached = batch;
    }

    /// <summary>Adds the pre-checks, as the first stage, if there are any. Called first, on an empty batch.</summary>
    public void AddPreChecks(ReadOnlySpan<RateLimitCheck> preChecks)
    {
        preChecks.CopyTo(Checks);
        Count = PreCheckCount = preChecks.Length;
        EndStage();
    }

    /// <summary>Closes the checks added since the last stage as a stage (a tier's, or the pre-checks'), if there are any.</summary>
    public void EndStage()
    {
        var start = StageCount == 0 ? 0 : StageEnds[StageCount - 1];
        if (Count > start)
        {
            StageEnds[StageCount] = Count;
            StageCount++;
        }
    }

    public void Add(RateLimitRule rule, in RateLimitCheck check)
    {
        Rules[Count] = rule;
        Checks[Count] = check;
        Count++;
    }
}
