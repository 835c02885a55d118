using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Stores.Memory;

/// <summary>
/// Which keys a full shard gives up: CLOCK with second chances, sparing exhausted keys, and a second hand that reclaims
/// expired keys as inserts go.
/// </summary>
/// <remarks>
/// <para>
/// When the shard is full, the clock hand looks at the next 16 keys for a victim: an expired key first, then, of the
/// keys not used since the hand last passed, the one closest to expiring; a key used since then gets a second chance,
/// and a new key starts without it.
/// </para>
/// <para>
/// A key left with at most a quarter of its budget by its latest decision (a login lockout, a spent quota, a client being
/// limited) is exhausted: losing it would give most of a budget back, so the hand passes it over while exhausted keys are
/// at most three quarters of the shard. A flood of new keys that each spend less than three quarters of their budget
/// therefore never evicts an exhausted key, however long it lasts; it does evict other idle keys, each after about one or
/// two turns of the hand. Past three quarters, exhausted keys are evicted like any other.
/// </para>
/// <para>
/// Every insert also reclaims the expired keys among the slots ahead of a second hand, so expired state does not
/// linger. The cost of an insert is amortised constant, whatever the size of the shard. Not thread-safe: the shard's
/// lock guards it.
/// </para>
/// </remarks>
internal sealed class ClockEviction(ShardTable table, LeaseSetPool leases, SlidingLogPool logs)
{
    private const int VictimWindow = 16;

    private int _evictHand;
    private int _reclaimHand;
    private int _exhausted;

    /// <summary>How many of the shard's keys are marked exhausted.</summary>
    public int Exhausted => _exhausted;

    /// <summary>
    /// Makes room for one more key among <paramref name="capacity"/>: reclaims expired keys ahead of the second hand,
    /// then, when the shard is full, evicts one. <see langword="false"/> when it is full and every key is pinned by the
    /// operation of <paramref name="stamp"/>.
    /// </summary>
    public bool MakeRoom(int capacity, long now, int stamp)
    {
        ReclaimExpired(now, stamp);
        return table.Count < capacity || Evict(now, stamp);
    }

    /// <summary>
    /// Records whether the key at <paramref name="slot"/> has at most a quarter of its budget left after its latest
    /// decision: evicting such a key would give a client most of a budget back, so eviction spares it.
    /// </summary>
    public void MarkExhausted(int slot, Limit limit, in LimitOutcome outcome)
    {
        ref var entry = ref table[slot];
        var exhausted = outcome.Remaining * 4 <= limit.Burst;
        if (entry.Exhausted != exhausted)
        {
            entry.Exhausted = exhausted;
            _exhausted += exhausted ? 1 : -1;
        }
    }

    /// <summary>
    /// Looks at the next few keys ahead of the clock hand for an expired key, else the one closest to expiring of those
    /// not used since the hand last passed; only when every one of those was used does it sweep on, clearing use bits, as a plain clock does. Exhausted
    /// keys (see <see cref="MarkExhausted"/>) are passed over while they are at most three quarters of the shard,
    /// so however many keys a flood inserts, it evicts keys whose loss gives back little before it evicts them.
    /// </summary>
    private bool Evict(long now, int stamp)
    {
        // Bounding the exhausted keys spared keeps a quarter of the shard evictable, so the hand finds a victim in
        // a few slots on average, and a flood of exhausted keys evicts under the plain clock like any other.
        var spare = _exhausted * 4 <= table.Count * 3;
        // The window counts keys, not slots: at a load of three eighths or less a window of slots may hold only a few
        // keys, none expired, and evict a live key while most of the shard has expired.
        var unused = -1;
        var seen = 0;
        for (var step = 0; step < table.Length && seen < VictimWindow; step++)
        {
            var slot = table.Ahead(_evictHand, step);
            ref var entry = ref table[slot];
            if (!entry.Used || entry.Stamp == stamp)
            {
                continue;
            }

            seen++;

            if (entry.ExpiresAt <= now)
            {
                return EvictAt(slot);
            }

            // Of the keys not used since the hand passed, the one closest to expiring loses the least state.
            if (!entry.Referenced && !(spare && entry.Exhausted) && (unused < 0 || entry.ExpiresAt < table[unused].ExpiresAt))
            {
                unused = slot;
            }
        }

        if (unused >= 0)
        {
            return EvictAt(unused);
        }

        // Two laps always find a victim unless every key is pinned by this operation or spared; then two more
        // laps spare nothing.
        for (var pass = spare ? 0 : 1; pass < 2; pass++)
        {
            for (var step = 0; step < 2 * table.Length; step++)
            {
                var slot = _evictHand;
                _evictHand = table.Next(_evictHand);
                ref var entry = ref table[slot];
                if (!entry.Used || entry.Stamp == stamp)
                {
                    continue;
                }

                if (entry.ExpiresAt > now && pass == 0 && entry.Exhausted)
                {
                    continue;
                }

                if (entry.ExpiresAt > now && entry.Referenced)
                {
                    entry.Referenced = false;
                    continue;
                }

                Remove(slot);
                return true;
            }
        }

        return false;
    }

    /// <summary>Moves the hand past <paramref name="victim"/>, giving the keys it passes their second chance, and evicts it.</summary>
    private bool EvictAt(int victim)
    {
        while (_evictHand != victim)
        {
            table[_evictHand].Referenced = false;
            _evictHand = table.Next(_evictHand);
        }

        _evictHand = table.Next(victim);
        Remove(victim);
        return true;
    }

    private void ReclaimExpired(long now, int stamp)
    {
        // Four slots per insert walk the table faster than inserts fill it, so expired keys do not pile up.
        // The hand stays on a slot it emptied: removal shifts the next entry of the run back into it.
        for (var step = 0; step < 4; step++)
        {
            var slot = _reclaimHand;
            ref var entry = ref table[slot];
            if (entry.Used && entry.Stamp != stamp && entry.ExpiresAt <= now)
            {
                Remove(slot);
            }
            else
            {
                _reclaimHand = table.Next(slot);
            }
        }
    }

    /// <summary>Removes the key at <paramref name="slot"/>, forgetting its mark and giving back its lease set or log.</summary>
    public void Remove(int slot)
    {
        var removed = table.Remove(slot);
        if (removed.Exhausted)
        {
            _exhausted--;
        }

        if (removed.Leases != 0)
        {
            leases.Return(removed.Leases);
        }

        if (removed.Log != 0)
        {
            logs.Return(removed.Log);
        }
    }
}
