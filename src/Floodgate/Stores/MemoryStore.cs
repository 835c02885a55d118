using System.Numerics;
using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Stores;

/// <summary>
/// The embedded store: state kept in this process, sharded by identity, bounded in entries, and decided without
/// allocating for a key it already holds.
/// </summary>
/// <remarks>
/// <para>
/// Each shard is a dictionary from key hash to a slot in an array of structs, guarded by one lock. All keys of one
/// identity live in one shard, so the atomic decision of an identity's checks takes one lock.
/// </para>
/// <para>
/// The number of keys never exceeds <see cref="MemoryStoreOptions.MaxEntries"/>. When a shard is full, a clock hand
/// looks a few slots ahead for a victim: an expired key first, then a key not used since the hand last passed; a key
/// used since then gets a second chance. A new key starts without that second chance, so a flood of fabricated
/// one-time keys evicts itself before it evicts the keys of real clients. Every insert also reclaims up to two
/// expired keys ahead of a second hand, so expired state does not linger. The cost of an insert is bounded by the
/// look-ahead, whatever the size of the shard.
/// </para>
/// </remarks>
public sealed class MemoryStore : IRateLimitStore
{
    private const int StackChecks = 32;
    private readonly Shard[] _shards;
    private readonly int _shardMask;
    private readonly TimeProvider _time;
    private long _nextLeaseId;

    /// <summary>Creates a store.</summary>
    /// <param name="options">The options; defaults when <see langword="null"/>.</param>
    /// <param name="timeProvider">The clock; the system clock when <see langword="null"/>.</param>
    public MemoryStore(MemoryStoreOptions? options = null, TimeProvider? timeProvider = null)
    {
        options ??= new MemoryStoreOptions();
        options.Validate();
        _time = timeProvider ?? TimeProvider.System;
        var shards = options.Shards > 0 ? options.Shards : Environment.ProcessorCount * 16;

        // Never more shards than keys, so each shard holds at least one key and the total stays under the cap.
        shards = (int)Math.Min(BitOperations.RoundUpToPowerOf2((uint)shards), BitOperations.RoundUpToPowerOf2((uint)options.MaxEntries + 1) / 2);
        shards = Math.Max(1, shards);
        _shards = new Shard[shards];
        _shardMask = shards - 1;
        var perShard = options.MaxEntries / shards;
        for (var i = 0; i < shards; i++)
        {
            _shards[i] = new Shard(perShard);
        }

        MaxEntries = perShard * shards;
    }

    /// <summary>The most keys this store keeps: <see cref="MemoryStoreOptions.MaxEntries"/> rounded down to a multiple of the shard count.</summary>
    public int MaxEntries { get; }

    /// <summary>How many keys the store holds now.</summary>
    public int Count
    {
        get
        {
            var count = 0;
            foreach (var shard in _shards)
            {
                count += Volatile.Read(ref shard.Count);
            }

            return count;
        }
    }

    /// <inheritdoc/>
    public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        Decide(checks.Span, outcomes.Span, NowMicroseconds());
        return default;
    }

    /// <inheritdoc/>
    public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
    {
        Decide(checks, outcomes, NowMicroseconds());
        return true;
    }

    /// <summary>Decides synchronously; see <see cref="IRateLimitStore.DecideAsync"/>.</summary>
    public void Decide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) =>
        Decide(checks, outcomes, NowMicroseconds());

    /// <inheritdoc/>
    public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        var shard = ShardFor(check.Key.Identity);
        lock (shard.Gate)
        {
            shard.Release(check.Key.Value, leaseId);
        }

        return default;
    }

    /// <summary>Decides at an explicit time, for tests that compare stores on one clock.</summary>
    internal void Decide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes, long now)
    {
        if (outcomes.Length < checks.Length)
        {
            throw new ArgumentException("There must be an outcome for every check.", nameof(outcomes));
        }

        if (checks.Length == 1)
        {
            var shard = ShardFor(checks[0].Key.Identity);
            Span<int> slot = stackalloc int[1];
            Span<LimitState> next = stackalloc LimitState[1];
            lock (shard.Gate)
            {
                DecideGroup(shard, checks, outcomes, default, slot, next, now, this);
            }

            return;
        }

        var rented = checks.Length > StackChecks;
        Span<int> slots = rented ? new int[checks.Length] : stackalloc int[StackChecks];
        Span<LimitState> nexts = rented ? new LimitState[checks.Length] : stackalloc LimitState[StackChecks];
        Span<bool> done = rented ? new bool[checks.Length] : stackalloc bool[StackChecks];
        for (var i = 0; i < checks.Length; i++)
        {
            if (done[i])
            {
                continue;
            }

            var identity = checks[i].Key.Identity;
            for (var j = i; j < checks.Length; j++)
            {
                done[j] |= checks[j].Key.Identity == identity;
            }

            var shard = ShardFor(identity);
            lock (shard.Gate)
            {
                DecideGroup(shard, checks[i..], outcomes[i..], identity, slots[i..], nexts[i..], now, this);
            }
        }
    }

    private static void DecideGroup(
        Shard shard,
        ReadOnlySpan<RateLimitCheck> checks,
        Span<StoreOutcome> outcomes,
        UInt128 identity,
        Span<int> slots,
        Span<LimitState> nexts,
        long now,
        MemoryStore store)
    {
        // With one check there is no group to filter; with several, this group is the checks of one identity.
        var filter = checks.Length > 1;
        var stamp = ++shard.Stamp;
        var denied = false;
        for (var k = 0; k < checks.Length; k++)
        {
            ref readonly var check = ref checks[k];
            if (filter && check.Key.Identity != identity)
            {
                continue;
            }

            var slot = shard.FindOrAdd(check.Key.Value, now, stamp);
            slots[k] = slot;
            LimitOutcome outcome;
            if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                var leases = slot >= 0 ? shard.Leases(slot) : null;
                leases?.Purge(now);
                outcome = LimitMath.Concurrency(check.Limit, leases?.InFlight ?? 0, leases?.EarliestExpiry ?? 0, leases?.LatestExpiry ?? 0, now, check.Cost);
            }
            else
            {
                var state = slot >= 0 ? shard.Entries[slot].State : default;
                outcome = LimitMath.Decide(check.Limit, state, now, check.Cost, out nexts[k]);
            }

            denied |= !outcome.IsAllowed && !check.IsShadow;
            outcomes[k] = new StoreOutcome(outcome, outcome.IsAllowed, 0);
        }

        for (var k = 0; k < checks.Length; k++)
        {
            ref readonly var check = ref checks[k];
            if ((filter && check.Key.Identity != identity) || !outcomes[k].Committed)
            {
                continue;
            }

            if (denied)
            {
                outcomes[k] = outcomes[k] with { Committed = false };
                continue;
            }

            var slot = slots[k];
            if (slot < 0 || check.Cost == 0)
            {
                continue;
            }

            ref var entry = ref shard.Entries[slot];
            if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                var leaseId = Interlocked.Increment(ref store._nextLeaseId);
                var expiry = now + check.Limit.LeaseTimeoutMicroseconds;
                var leases = shard.Leases(slot) ?? shard.CreateLeases(slot);
                leases.Add(leaseId, expiry, check.Cost);
                entry.ExpiresAt = leases.LatestExpiry;
                outcomes[k] = outcomes[k] with { LeaseId = leaseId };
            }
            else
            {
                entry.State = nexts[k];
                entry.ExpiresAt = LimitMath.ExpiresAt(check.Limit, nexts[k]);
            }
        }
    }

    private long NowMicroseconds() =>
        (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    private Shard ShardFor(UInt128 identity) => _shards[(int)((ulong)identity ^ (ulong)(identity >> 64)) & _shardMask];

    private struct Entry
    {
        public UInt128 Key;
        public LimitState State;
        public long ExpiresAt;
        public LeaseSet? Leases;
        public int NextFree;
        public int Stamp;
        public bool Referenced;
        public bool Live;
    }

    private sealed class Shard(int capacity)
    {
        private const int VictimWindow = 16;
        public readonly Lock Gate = new();
        public int Count;
        public int Stamp;
        public Entry[] Entries = new Entry[Math.Min(capacity, 16)];
        private readonly Dictionary<UInt128, int> _index = new(Math.Min(capacity, 16));
        private int _used;
        private int _freeHead = -1;
        private int _evictHand;
        private int _reclaimHand;

        /// <summary>The slot of <paramref name="key"/>, added if new; -1 when every slot is pinned by this operation.</summary>
        public int FindOrAdd(UInt128 key, long now, int stamp)
        {
            if (_index.TryGetValue(key, out var slot))
            {
                ref var found = ref Entries[slot];
                found.Referenced = true;
                found.Stamp = stamp;
                return slot;
            }

            ReclaimExpired(now, stamp);
            slot = Allocate(now, stamp);
            if (slot < 0)
            {
                return -1;
            }

            Entries[slot] = new Entry { Key = key, Live = true, Stamp = stamp, NextFree = -1 };
            _index.Add(key, slot);
            Count++;
            return slot;
        }

        public LeaseSet? Leases(int slot) => Entries[slot].Leases;

        public LeaseSet CreateLeases(int slot) => Entries[slot].Leases = new LeaseSet();

        public void Release(UInt128 key, long leaseId)
        {
            if (_index.TryGetValue(key, out var slot) && Entries[slot].Leases is { } leases && leases.Remove(leaseId))
            {
                Entries[slot].ExpiresAt = leases.LatestExpiry;
            }
        }

        private int Allocate(long now, int stamp)
        {
            if (_freeHead >= 0)
            {
                var free = _freeHead;
                _freeHead = Entries[free].NextFree;
                return free;
            }

            if (_used < Entries.Length)
            {
                return _used++;
            }

            if (Entries.Length < capacity)
            {
                Array.Resize(ref Entries, (int)Math.Min(capacity, Entries.Length * 2L));
                return _used++;
            }

            var victim = PickVictim(now, stamp);
            if (victim < 0)
            {
                return -1;
            }

            Evict(victim);
            _freeHead = Entries[victim].NextFree;
            return victim;
        }

        /// <summary>
        /// Looks a few slots ahead of the clock hand for an expired key, else one not used since the hand last passed;
        /// only when every one of those was used does it sweep on, clearing use bits, as a plain clock does.
        /// </summary>
        private int PickVictim(long now, int stamp)
        {
            var length = Entries.Length;
            var window = Math.Min(VictimWindow, length);
            var unused = -1;
            for (var step = 0; step < window; step++)
            {
                var slot = (_evictHand + step) % length;
                ref var entry = ref Entries[slot];
                if (entry.Stamp == stamp)
                {
                    continue;
                }

                if (entry.ExpiresAt <= now)
                {
                    return Advance(slot);
                }

                if (unused < 0 && !entry.Referenced)
                {
                    unused = slot;
                }
            }

            if (unused >= 0)
            {
                return Advance(unused);
            }

            // Two laps always find a victim unless every slot is pinned by this operation.
            for (var step = 0; step < 2 * length; step++)
            {
                var slot = _evictHand;
                _evictHand = (_evictHand + 1) % length;
                ref var entry = ref Entries[slot];
                if (entry.Stamp == stamp)
                {
                    continue;
                }

                if (entry.ExpiresAt > now && entry.Referenced)
                {
                    entry.Referenced = false;
                    continue;
                }

                return slot;
            }

            return -1;
        }

        /// <summary>Moves the hand past <paramref name="victim"/>, giving the used keys it passes their second chance.</summary>
        private int Advance(int victim)
        {
            while (_evictHand != victim)
            {
                Entries[_evictHand].Referenced = false;
                _evictHand = (_evictHand + 1) % Entries.Length;
            }

            _evictHand = (victim + 1) % Entries.Length;
            return victim;
        }

        private void ReclaimExpired(long now, int stamp)
        {
            for (var step = 0; step < 2 && _used > 0; step++)
            {
                var slot = _reclaimHand < _used ? _reclaimHand : 0;
                _reclaimHand = slot + 1;
                ref var entry = ref Entries[slot];
                if (entry.Live && entry.Stamp != stamp && entry.ExpiresAt <= now)
                {
                    Evict(slot);
                }
            }
        }

        private void Evict(int slot)
        {
            ref var entry = ref Entries[slot];
            _index.Remove(entry.Key);
            entry = new Entry { NextFree = _freeHead };
            _freeHead = slot;
            Count--;
        }
    }

    /// <summary>The leases of one concurrency key: parallel arrays, grown as needed, compacted as leases end.</summary>
    private sealed class LeaseSet
    {
        private long[] _ids = new long[4];
        private long[] _expiries = new long[4];
        private long[] _permits = new long[4];
        private int _count;

        public long InFlight { get; private set; }

        public long EarliestExpiry { get; private set; }

        public long LatestExpiry { get; private set; }

        public void Purge(long now)
        {
            var removed = false;
            for (var i = _count - 1; i >= 0; i--)
            {
                if (_expiries[i] <= now)
                {
                    RemoveAt(i);
                    removed = true;
                }
            }

            if (removed)
            {
                Summarize();
            }
        }

        public void Add(long id, long expiry, long permits)
        {
            if (_count == _ids.Length)
            {
                Array.Resize(ref _ids, _count * 2);
                Array.Resize(ref _expiries, _count * 2);
                Array.Resize(ref _permits, _count * 2);
            }

            (_ids[_count], _expiries[_count], _permits[_count]) = (id, expiry, permits);
            _count++;
            Summarize();
        }

        public bool Remove(long id)
        {
            for (var i = 0; i < _count; i++)
            {
                if (_ids[i] == id)
                {
                    RemoveAt(i);
                    Summarize();
                    return true;
                }
            }

            return false;
        }

        private void RemoveAt(int i)
        {
            _count--;
            (_ids[i], _expiries[i], _permits[i]) = (_ids[_count], _expiries[_count], _permits[_count]);
        }

        private void Summarize()
        {
            long inFlight = 0, earliest = 0, latest = 0;
            for (var i = 0; i < _count; i++)
            {
                inFlight += _permits[i];
                earliest = earliest == 0 ? _expiries[i] : Math.Min(earliest, _expiries[i]);
                latest = Math.Max(latest, _expiries[i]);
            }

            (InFlight, EarliestExpiry, LatestExpiry) = (inFlight, earliest, latest);
        }
    }
}
