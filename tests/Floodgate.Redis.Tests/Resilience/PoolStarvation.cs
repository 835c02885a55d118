using System.Diagnostics;

namespace Floodgate.Redis.Tests;

/// <summary>
/// Keeps every thread of the pool busy for a while, as a CPU-starved gateway's pool is: what is queued meanwhile (timer
/// callbacks, socket completions, continuations) runs only once it ends. <see cref="Held"/> says whether it did: a work
/// item queued after the blockers ran only after they were let go.
/// </summary>
internal sealed class PoolStarvation : IDisposable
{
    // Beyond the threads the pool has: the threads it injects while starved take these first (the global queue is FIFO).
    private const int SpareBlockers = 16;

    private readonly ManualResetEventSlim _gate = new();
    private readonly CountdownEvent _exited;
    private long _releasedAt;
    private long _canaryRanAt;

    private PoolStarvation(int blockers) => _exited = new CountdownEvent(blockers);

    /// <summary>Whether the pool was held: the canary queued once the blockers were running ran only after their release.</summary>
    public bool Held => Volatile.Read(ref _canaryRanAt) >= Volatile.Read(ref _releasedAt) && _releasedAt != 0;

    /// <summary>Occupies every thread of the pool (bounded: each blocker lets go after 10 s whatever happens).</summary>
    public static PoolStarvation Begin()
    {
        ThreadPool.GetMinThreads(out var minimum, out _);
        var blockers = Math.Max(ThreadPool.ThreadCount, minimum) + SpareBlockers;
        var starvation = new PoolStarvation(blockers);
        var started = 0;
        for (var i = 0; i < blockers; i++)
        {
            ThreadPool.UnsafeQueueUserWorkItem(
                s =>
                {
                    Interlocked.Increment(ref started);
                    s._gate.Wait(TimeSpan.FromSeconds(10));
                    s._exited.Signal();
                },
                starvation,
                preferLocal: false);
        }

        // Until every thread of the pool runs a blocker (bounded); the canary tells afterwards whether it held.
        var waited = Stopwatch.StartNew();
        while (Volatile.Read(ref started) < ThreadPool.ThreadCount && waited.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Yield();
        }

        ThreadPool.UnsafeQueueUserWorkItem(static s => Volatile.Write(ref s._canaryRanAt, Stopwatch.GetTimestamp()), starvation, preferLocal: false);
        return starvation;
    }

    /// <summary>Lets the pool go and waits (bounded) for every blocker to end.</summary>
    public void Dispose()
    {
        Volatile.Write(ref _releasedAt, Stopwatch.GetTimestamp());
        _gate.Set();
        _exited.Wait(TimeSpan.FromSeconds(15));
    }
}
