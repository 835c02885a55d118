using Floodgate.Algorithms;

namespace Floodgate.Stores.Memory;

/// <summary>One slot of a shard's table: 64 bytes, so a lookup usually touches one cache line.</summary>
internal struct Entry
{
    /// <summary>The key's <see cref="Keys.StoreKey.Value"/>.</summary>
    public UInt128 Key;

    /// <summary>The key's state, for every algorithm but concurrency.</summary>
    public LimitState State;

    /// <summary>When the key's state becomes the same as none, in microseconds since the Unix epoch.</summary>
    public long ExpiresAt;

    /// <summary>For a concurrency key, its lease set in the shard's <see cref="LeaseSetPool"/>; 0 for none.</summary>
    public int Leases;

    /// <summary>For a sliding-log key, its log in the shard's <see cref="SlidingLogPool"/>; 0 for none.</summary>
    public int Log;

    /// <summary>The stamp of the operation that last read or wrote the key: an operation never evicts a key it holds.</summary>
    public int Stamp;

    /// <summary>Whether the slot holds a key.</summary>
    public bool Used;

    /// <summary>Whether the key was used since the clock hand last passed it (its second chance).</summary>
    public bool Referenced;

    /// <summary>Whether the key's latest decision left it at most a quarter of its budget; see <see cref="ClockEviction"/>.</summary>
    public bool Exhausted;
}

/// <summary>
/// A shard's keys: an open-addressing table with linear probing and backward-shift deletion (no tombstones), at most
/// three quarters full, growing by doubling. A key's home slot is a <see cref="KeyedMix"/> of its hash with the shard's
/// secret seeds, so the table stays spread even for keys chosen to collide under public constants.
/// </summary>
/// <remarks>Not thread-safe: the shard's lock guards it. Which key to evict is <see cref="ClockEviction"/>'s choice.</remarks>
internal sealed class ShardTable(ulong seed0, ulong seed1)
{
    private const int InitialLength = 16;

    private Entry[] _entries = new Entry[InitialLength];
    private int _mask = InitialLength - 1;

    /// <summary>How many keys the table holds; written under the shard's lock, read without it by <see cref="MemoryStore.Count"/>.</summary>
    public int Count;

    /// <summary>The number of slots, a power of two.</summary>
    public int Length => _entries.Length;

    /// <summary>The slot after <paramref name="slot"/>, wrapping around.</summary>
    public int Next(int slot) => (slot + 1) & _mask;

    /// <summary>The slot <see cref="Next"/> reaches after <paramref name="steps"/> steps from <paramref name="slot"/>.</summary>
    public int Ahead(int slot, int steps) => (slot + steps) & _mask;

    /// <summary>The entry in <paramref name="slot"/>.</summary>
    public ref Entry this[int slot] => ref _entries[slot];

    /// <summary>The slot of <paramref name="key"/>, or -1 when the table does not hold it.</summary>
    public int Find(UInt128 key)
    {
        var table = _entries;
        var mask = _mask;
        for (var i = Home(key); ; i = (i + 1) & mask)
        {
            ref var entry = ref table[i];
            if (!entry.Used)
            {
                return -1;
            }

            if (entry.Key == key)
            {
                return i;
            }
        }
    }

    /// <summary>
    /// Adds <paramref name="key"/>, which the table does not hold, with nothing but the <paramref name="stamp"/> of the
    /// operation adding it; grows the table first if it would be more than three quarters full. Returns its slot.
    /// </summary>
    public int Add(UInt128 key, int stamp)
    {
        if ((Count + 1) * 4 > _entries.Length * 3)
        {
            Grow();
        }

        var i = Home(key);
        while (_entries[i].Used)
        {
            i = (i + 1) & _mask;
        }

        _entries[i] = new Entry { Key = key, Used = true, Stamp = stamp };
        Count++;
        return i;
    }

    /// <summary>
    /// Empties <paramref name="slot"/> and shifts back the entries of its probe run, so lookups never need tombstones.
    /// Returns the entry removed, whose lease set the caller gives back.
    /// </summary>
    public Entry Remove(int slot)
    {
        var removed = _entries[slot];
        var hole = slot;
        for (var i = (slot + 1) & _mask; _entries[i].Used; i = (i + 1) & _mask)
        {
            var home = Home(_entries[i].Key);

            // The entry at i may fill the hole unless its home lies cyclically in (hole, i].
            var stays = hole <= i ? home > hole && home <= i : home > hole || home <= i;
            if (!stays)
            {
                _entries[hole] = _entries[i];
                hole = i;
            }
        }

        _entries[hole] = default;
        Count--;
        return removed;
    }

    /// <summary>The longest distance of any key from its home slot, for tests.</summary>
    public int LongestProbe()
    {
        var longest = 0;
        for (var i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].Used)
            {
                longest = Math.Max(longest, (i - Home(_entries[i].Key)) & _mask);
            }
        }

        return longest;
    }

    // The clock hands need no adjusting: a slot number below the old length is still a slot of the grown table.
    private void Grow()
    {
        var old = _entries;
        _entries = new Entry[old.Length * 2];
        _mask = _entries.Length - 1;
        foreach (ref readonly var entry in old.AsSpan())
        {
            if (!entry.Used)
            {
                continue;
            }

            var i = Home(entry.Key);
            while (_entries[i].Used)
            {
                i = (i + 1) & _mask;
            }

            _entries[i] = entry;
        }
    }

    private int Home(UInt128 key) => KeyedMix.Of(key, seed0, seed1) & _mask;
}
