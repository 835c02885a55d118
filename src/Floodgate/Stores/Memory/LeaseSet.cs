using System.Runtime.InteropServices;

namespace Floodgate.Stores.Memory;

/// <summary>
/// The leases of one concurrency key, and what a decision reads of them: the permits in flight and the earliest and
/// latest expiry. Adding, releasing and expiring a lease each take O(log n) in the n leases held, so a key with a
/// concurrency limit of thousands costs a decision, under its shard's lock, little more than a key with a limit of ten.
/// </summary>
/// <remarks>
/// <para>
/// The leases fill slots <c>0..n-1</c> of parallel arrays (id, expiry, permits). Two binary heaps of slot numbers, one
/// ordered by earliest expiry and one by latest, give the two expiries at their roots, and each slot records where it
/// stands in both, so any lease leaves either heap in O(log n). A dictionary from lease id to slot, made once per set
/// and reused as the set is, finds the lease a release names. Removing a lease moves the last slot into its place, so
/// the slots stay dense. Past the growth of its arrays and dictionary (amortized, as a key holds more leases than it
/// ever has), nothing allocates.
/// </para>
/// <para>
/// The summary is exact, as the Redis store's script computes it: <see cref="InFlight"/> sums the permits of the leases
/// held, <see cref="EarliestExpiry"/> is the least expiry and <see cref="LatestExpiry"/> the greatest (never below 0),
/// each 0 when no lease is held. (The linear scan this replaced read an expiry of exactly 0 as "none yet"; expiries are
/// microseconds since 1970 plus a timeout of at least a millisecond, so no clock after 1970 gives one.)
/// </para>
/// <para>Not thread-safe: a shard uses its sets under its lock.</para>
/// </remarks>
internal sealed class LeaseSet
{
    private const int InitialCapacity = 4;

    private readonly Dictionary<long, int> _slotOf = [];
    private long[] _ids = new long[InitialCapacity];
    private long[] _expiries = new long[InitialCapacity];
    private long[] _permits = new long[InitialCapacity];

    // Heaps of slot numbers (earliest expiry at the root of one, latest at the root of the other), and where each slot
    // stands in each.
    private int[] _earliest = new int[InitialCapacity];
    private int[] _latest = new int[InitialCapacity];
    private int[] _earliestAt = new int[InitialCapacity];
    private int[] _latestAt = new int[InitialCapacity];
    private int _count;

    /// <summary>The permits of the leases held.</summary>
    public long InFlight { get; private set; }

    /// <summary>The earliest expiry of a lease held, or 0 when none is.</summary>
    public long EarliestExpiry => _count == 0 ? 0 : _expiries[_earliest[0]];

    /// <summary>The latest expiry of a lease held (at least 0), or 0 when none is.</summary>
    public long LatestExpiry => _count == 0 ? 0 : Math.Max(0, _expiries[_latest[0]]);

    /// <summary>Forgets every lease, keeping the arrays for the next key the set serves. O(n), once per key.</summary>
    public void Clear()
    {
        for (var slot = 0; slot < _count; slot++)
        {
            _slotOf.Remove(_ids[slot]);
        }

        _count = 0;
        InFlight = 0;
    }

    /// <summary>Removes every lease expired at <paramref name="now"/> (its expiry at or before it).</summary>
    public void Purge(long now)
    {
        while (_count > 0 && _expiries[_earliest[0]] <= now)
        {
            var slot = _earliest[0];
            _slotOf.Remove(_ids[slot]);
            RemoveAt(slot);
        }
    }

    /// <summary>Adds a lease.</summary>
    /// <exception cref="ArgumentException">A lease with this id is held already.</exception>
    public void Add(long id, long expiry, long permits)
    {
        var slot = _count;

        // First, so a duplicate id throws before anything has changed.
        _slotOf.Add(id, slot);
        if (slot == _ids.Length)
        {
            Grow();
        }

        (_ids[slot], _expiries[slot], _permits[slot]) = (id, expiry, permits);
        _count++;
        InFlight += permits;
        SiftUp(_earliest, _earliestAt, slot, slot, latest: false);
        SiftUp(_latest, _latestAt, slot, slot, latest: true);
    }

    /// <summary>Removes the lease <paramref name="id"/>; <see langword="false"/> when it is not held.</summary>
    public bool Remove(long id)
    {
        if (!_slotOf.Remove(id, out var slot))
        {
            return false;
        }

        RemoveAt(slot);
        return true;
    }

    /// <summary>Removes the lease in <paramref name="slot"/>, whose id the caller has taken out of the dictionary.</summary>
    private void RemoveAt(int slot)
    {
        InFlight -= _permits[slot];
        var last = --_count;
        Delete(_earliest, _earliestAt, _earliestAt[slot], latest: false);
        Delete(_latest, _latestAt, _latestAt[slot], latest: true);
        if (slot == last)
        {
            return;
        }

        // The last slot fills the hole, so the slots stay 0..count-1; both heaps and the dictionary follow it.
        (_ids[slot], _expiries[slot], _permits[slot]) = (_ids[last], _expiries[last], _permits[last]);
        _earliestAt[slot] = _earliestAt[last];
        _earliest[_earliestAt[slot]] = slot;
        _latestAt[slot] = _latestAt[last];
        _latest[_latestAt[slot]] = slot;
        CollectionsMarshal.GetValueRefOrNullRef(_slotOf, _ids[slot]) = slot;
    }

    /// <summary>Takes the entry at <paramref name="position"/> out of a heap that has just shrunk to <see cref="_count"/>.</summary>
    private void Delete(int[] heap, int[] at, int position, bool latest)
    {
        if (position == _count)
        {
            return;
        }

        // The heap's last entry takes the place, then moves up or down to where its expiry belongs.
        var moved = heap[_count];
        if (!SiftUp(heap, at, position, moved, latest))
        {
            SiftDown(heap, at, position, moved, latest);
        }
    }

    /// <summary>Places <paramref name="slot"/> at <paramref name="position"/> or above it; <see langword="true"/> when it moved up.</summary>
    private bool SiftUp(int[] heap, int[] at, int position, int slot, bool latest)
    {
        var expiry = _expiries[slot];
        var start = position;
        while (position > 0)
        {
            var parent = (position - 1) >> 1;
            var above = heap[parent];
            if (!Precedes(expiry, _expiries[above], latest))
            {
                break;
            }

            heap[position] = above;
            at[above] = position;
            position = parent;
        }

        heap[position] = slot;
        at[slot] = position;
        return position != start;
    }

    /// <summary>Places <paramref name="slot"/> at <paramref name="position"/> or below it.</summary>
    private void SiftDown(int[] heap, int[] at, int position, int slot, bool latest)
    {
        var expiry = _expiries[slot];
        while (true)
        {
            var child = (2 * position) + 1;
            if (child >= _count)
            {
                break;
            }

            if (child + 1 < _count && Precedes(_expiries[heap[child + 1]], _expiries[heap[child]], latest))
            {
                child++;
            }

            var below = heap[child];
            if (!Precedes(_expiries[below], expiry, latest))
            {
                break;
            }

            heap[position] = below;
            at[below] = position;
            position = child;
        }

        heap[position] = slot;
        at[slot] = position;
    }

    private static bool Precedes(long expiry, long other, bool latest) => latest ? expiry > other : expiry < other;

    private void Grow()
    {
        var length = _ids.Length * 2;
        Array.Resize(ref _ids, length);
        Array.Resize(ref _expiries, length);
        Array.Resize(ref _permits, length);
        Array.Resize(ref _earliest, length);
        Array.Resize(ref _latest, length);
        Array.Resize(ref _earliestAt, length);
        Array.Resize(ref _latestAt, length);
    }
}
