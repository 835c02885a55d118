using System.Collections.Concurrent;
using Floodgate.Keys;

namespace Floodgate.Abuse;

/// <summary>
/// Distinct sets in process: one <see cref="DistinctSketch"/> per key, reset in place when its window passes. One replica,
/// lost at a restart like the memory store's counters.
/// </summary>
/// <remarks>
/// Bounded by <see cref="MaxKeys"/>: at the bound, the keys whose window has passed are dropped, and if none has, a new
/// key is not tracked (its request counts one value) rather than memory growing without end.
/// </remarks>
public sealed class MemoryDistinctStore : IDistinctStore
{
    /// <summary>The most keys held by default.</summary>
    public const int DefaultMaxKeys = 100_000;

    private readonly ConcurrentDictionary<StoreKey, Entry> _entries = new();
    private readonly Lock _sweepLock = new();

    /// <summary>Creates an empty store of at most <paramref name="maxKeys"/> keys.</summary>
    public MemoryDistinctStore(int maxKeys = DefaultMaxKeys)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxKeys, 1);
        MaxKeys = maxKeys;
    }

    /// <summary>The most keys held at once.</summary>
    public int MaxKeys { get; }

    /// <summary>How many keys are held.</summary>
    public int Count => _entries.Count;

    /// <inheritdoc/>
    public ValueTask<long> AddAsync(StoreKey key, ulong value, DateTimeOffset windowStart, TimeSpan period, CancellationToken cancellationToken = default) =>
        new(Add(key, value, windowStart.UtcTicks, period.Ticks));

    /// <summary>Adds synchronously: what <see cref="AddAsync"/> does, without a task (times in ticks).</summary>
    public long Add(StoreKey key, ulong value, long windowStartTicks, long periodTicks)
    {
        if (!_entries.TryGetValue(key, out var entry))
        {
            if (_entries.Count >= MaxKeys && !Sweep(windowStartTicks))
            {
                return 1;
            }

            entry = _entries.GetOrAdd(key, static _ => new Entry());
        }

        lock (entry)
        {
            if (entry.Window != windowStartTicks)
            {
                // A new window (or an old request arriving late, which then starts over: rare, and never more lenient than a reset).
                entry.Sketch.Reset();
                entry.Window = windowStartTicks;
                Volatile.Write(ref entry.End, windowStartTicks + periodTicks);
            }

            entry.Sketch.Add(value);
            return entry.Sketch.Count;
        }
    }

    /// <summary>
    /// Drops the keys whose window ended before <paramref name="windowStartTicks"/> (a window start is never later than
    /// now, so no live key is dropped, whatever its rule's period); whether there is room now.
    /// </summary>
    private bool Sweep(long windowStartTicks)
    {
        lock (_sweepLock)
        {
            if (_entries.Count < MaxKeys)
            {
                return true;
            }

            foreach (var (key, entry) in _entries)
            {
                if (Volatile.Read(ref entry.End) <= windowStartTicks)
                {
                    _entries.TryRemove(key, out _);
                }
            }

            return _entries.Count < MaxKeys;
        }
    }

    private sealed class Entry
    {
        public readonly DistinctSketch Sketch = new();
        public long Window = long.MinValue;
        public long End = long.MinValue;
    }
}
