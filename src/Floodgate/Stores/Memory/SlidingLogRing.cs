namespace Floodgate.Stores.Memory;

/// <summary>
/// The log of one sliding-log key: entry times, oldest first, in a ring that grows by doubling (to the limit's amount,
/// rounded up to a power of two, at most 8 KB) and is kept when the key goes, for the next key the pool lends it to.
/// </summary>
/// <remarks>
/// Entries leave only when new ones are appended (those out of the window then): a decision reads the window by a
/// binary search, so a clock stepped back still finds every entry the later time counted. Not thread-safe: the shard's
/// lock guards it.
/// </remarks>
internal sealed class SlidingLogRing
{
    private const int InitialCapacity = 4;

    private long[] _times = new long[InitialCapacity];
    private int _head;

    /// <summary>How many entries the ring holds, in the window or not.</summary>
    public int Count { get; private set; }

    /// <summary>The newest entry's time, or 0 when the ring is empty.</summary>
    public long Newest => Count == 0 ? 0 : At(Count - 1);

    /// <summary>The entry <paramref name="index"/> places from the oldest.</summary>
    public long At(long index) => _times[(_head + (int)index) & (_times.Length - 1)];

    /// <summary>How many entries are later than <paramref name="horizon"/>: those in the window.</summary>
    public int CountAfter(long horizon)
    {
        // The first entry later than the horizon, by binary search over the ascending times.
        int lo = 0, hi = Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (At(mid) > horizon)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return Count - lo;
    }

    /// <summary>Drops the entries at or before <paramref name="horizon"/>, then appends <paramref name="units"/> entries at <paramref name="time"/>.</summary>
    public void Append(long time, long units, long horizon)
    {
        while (Count > 0 && At(0) <= horizon)
        {
            _head = (_head + 1) & (_times.Length - 1);
            Count--;
        }

        if (Count + units > _times.Length)
        {
            Grow((int)(Count + units));
        }

        for (var i = 0L; i < units; i++)
        {
            _times[(_head + Count) & (_times.Length - 1)] = time;
            Count++;
        }
    }

    /// <summary>Forgets every entry, keeping the array.</summary>
    public void Clear()
    {
        _head = 0;
        Count = 0;
    }

    private void Grow(int needed)
    {
        var grown = new long[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)needed)];
        for (var i = 0; i < Count; i++)
        {
            grown[i] = At(i);
        }

        _times = grown;
        _head = 0;
    }
}
