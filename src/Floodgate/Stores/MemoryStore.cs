using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Stores;

/// <summary>
/// The embedded store: state kept in this process, sharded by identity, bounded in entries, and decided without
/// allocating for a key it already holds.
/// </summary>
/// <remarks>
/// <para>
/// Each shard is an open-addressing table of 64-byte entries (key hash, state, expiry) guarded by one lock, so a
/// lookup usually touches one cache line. All keys of one identity live in one shard, so the atomic decision of an
/// identity's checks takes one lock.
/// </para>
/// <para>
/// The number of keys never exceeds <see cref="MemoryStoreOptions.MaxEntries"/>. When a shard is full, a clock hand
/// looks a few slots ahead for a victim: an expired key first, then a key not used since the hand last passed; a key
/// used since then gets a second chance, and a new key starts without it. A key left with at most a quarter of its
/// budget by its latest decision (a login lockout, a spent quota, a client being limited) is exhausted: losing it would
/// give most of a budget back, so the hand passes it over while exhausted keys are at most three quarters of the
/// shard. A flood of new keys that each spend less than three quarters of their budget therefore never evicts an
/// exhausted key, however long it lasts; it does evict other idle keys, each after about one or two turns of the hand.
/// Past three quarters, exhausted keys are evicted like any other. Every insert also reclaims the expired keys among
/// the slots ahead of a second hand, so expired state does not linger. The cost of an insert is amortised constant,
/// whatever the size of the shard.
/// </para>
/// <para>
/// Key hashes are public functions of what a client sends, so the shard and the slot of a key are chosen by a keyed mix
/// of its hash with secrets drawn at random when the store is created: a client cannot compute keys that crowd one
/// shard or one probe run.
/// </para>
/// </remarks>
[SkipLocalsInit]
public sealed class MemoryStore : IRateLimitStore
{
    private const int StackChecks = 32;
    private readonly Shard[] _shards;
    private readonly int _shardMask;
    private readonly ulong _shardSeed0;
    private readonly ulong _shardSeed1;
    private readonly TimeProvider _time;
    private readonly bool _tickClock;
    // Lease ids start at a random point (below 2^61, so they never wrap or reach the bits other stores mark theirs with):
    // when a store is replaced, a release can go to the old and the new store alike without freeing the wrong lease.
    private long _nextLeaseId = Random.Shared.NextInt64(1L << 61);

    /// <summary>Creates a store.</summary>
    /// <param name="options">The options; defaults when <see langword="null"/>.</param>
    /// <param name="timeProvider">The clock; the system clock when <see langword="null"/>.</param>
    public MemoryStore(MemoryStoreOptions? options = null, TimeProvider? timeProvider = null)
    {
        options ??= new MemoryStoreOptions();
        options.Validate();
        _time = timeProvider ?? TimeProvider.System;
        _tickClock = _time == TimeProvider.System && !options.PreciseClock;
        var shards = options.Shards > 0 ? options.Shards : Environment.ProcessorCount * 16;

        // Never more shards than keys, so each shard holds at least one key and the total stays under the cap.
        shards = (int)Math.Min(BitOperations.RoundUpToPowerOf2((uint)shards), BitOperations.RoundUpToPowerOf2((uint)options.MaxEntries + 1) / 2);
        shards = Math.Max(1, shards);
        _shards = new Shard[shards];
        _shardMask = shards - 1;

        // Secret seeds for the shard and slot of a key: the hashes themselves are computed with public constants.
        Span<ulong> seeds = stackalloc ulong[4];
        RandomNumberGenerator.Fill(MemoryMarshal.AsBytes(seeds));
        (_shardSeed0, _shardSeed1) = (seeds[0], seeds[1]);
        var perShard = options.MaxEntries / shards;
        for (var i = 0; i < shards; i++)
        {
            _shards[i] = new Shard(perShard, seeds[2], seeds[3]);
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
    public ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        var all = checks.Span;
        var results = outcomes.Span;
        var ends = stageEnds.Span;
        StagedDecisions.Validate(all.Length, ends, results.Length);
        var now = NowMicroseconds();
        var start = 0;
        for (var stage = 0; stage < ends.Length; stage++)
        {
            var end = ends[stage];
            Decide(all[start..end], results[start..end], now);
            if (StagedDecisions.Rejects(all[start..end], results[start..end]))
            {
                return new ValueTask<int>(stage + 1);
            }

            start = end;
        }

        return new ValueTask<int>(ends.Length);
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
            DecideOne(checks[0], ref outcomes[0], now);
        }
        else
        {
            DecideMany(checks, outcomes, now);
        }
    }

    // One check, the common case, stays apart from the batch path: a method with stack buffers is compiled once without
    // profile-guided optimization and zeroes its frame on every call.
    private void DecideOne(in RateLimitCheck check, ref StoreOutcome outcome, long now)
    {
        var shard = ShardFor(check.Key.Identity);
        lock (shard.Gate)
        {
            shard.DecideOne(check, ref outcome, now, this);
        }
    }

    private void DecideMany(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes, long now)
    {
        var large = checks.Length > StackChecks;
        Span<LimitState> nexts = large ? new LimitState[checks.Length] : stackalloc LimitState[StackChecks];
        Span<bool> done = large ? new bool[checks.Length] : stackalloc bool[StackChecks];
        done.Clear();
        for (var i = 0; i < checks.Length; i++)
        {
            if (done[i])
            {
                continue;
            }

            var identity = checks[i].Key.Identity;
            var shard = ShardFor(identity);
            lock (shard.Gate)
            {
                shard.DecideGroup(checks[i..], outcomes[i..], nexts[i..], done[i..], identity, now, this);
            }
        }
    }

    private long NowMicroseconds() => _tickClock
        ? TickClock.NowMicroseconds()
        : (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    private long NextLeaseId() => Interlocked.Increment(ref _nextLeaseId);

    private Shard ShardFor(UInt128 identity) => _shards[Mix(identity, _shardSeed0, _shardSeed1) & _shardMask];

    /// <summary>
    /// A keyed mix of a 128-bit hash: the 128-bit product of its halves, each XORed with a secret seed, folded to 64 bits
    /// (the multiply of wyhash and rapidhash), then spread by Fibonacci hashing so every bit of the fold reaches the
    /// bits returned. Without the seeds, which keys share a shard or a home slot cannot be predicted.
    /// </summary>
    private static int Mix(UInt128 key, ulong seed0, ulong seed1)
    {
        var high = Math.BigMul((ulong)key ^ seed0, (ulong)(key >> 64) ^ seed1, out var low);
        return (int)(((high ^ low) * 0x9E3779B97F4A7C15UL) >> 32);
    }

    /// <summary>The keys each shard holds, for tests.</summary>
    internal int[] ShardCounts() => [.. _shards.Select(s => Volatile.Read(ref s.Count))];

    /// <summary>How many keys are marked exhausted, for tests.</summary>
    internal int ExhaustedKeys()
    {
        var exhausted = 0;
        foreach (var shard in _shards)
        {
            lock (shard.Gate)
            {
                exhausted += shard.Exhausted;
            }
        }

        return exhausted;
    }

    /// <summary>The longest distance of any key from its home slot, for tests.</summary>
    internal int LongestProbe()
    {
        var longest = 0;
        foreach (var shard in _shards)
        {
            lock (shard.Gate)
            {
                longest = Math.Max(longest, shard.LongestProbe());
            }
        }

        return longest;
    }

    /// <summary>One slot of a shard's table: 64 bytes, so a lookup usually touches one cache line.</summary>
    private struct Entry
    {
        public UInt128 Key;
        public LimitState State;
        public long ExpiresAt;
        public int Leases;
        public int Stamp;
        public bool Used;
        public bool Referenced;
        public bool Exhausted;
    }

    /// <summary>
    /// An open-addressing table with linear probing and backward-shift deletion (no tombstones), at most three
    /// quarters full, guarded by <see cref="Gate"/>.
    /// </summary>
    private sealed class Shard
    {
        private const int VictimWindow = 16;
        private const int InitialLength = 16;

        public readonly Lock Gate = new();
        public int Count;

        private readonly int _capacity;
        private readonly ulong _seed0;
        private readonly ulong _seed1;
        private readonly List<LeaseSet?> _leaseSets = [null];
        private readonly Stack<int> _freeLeaseSets = new();
        private Entry[] _table = new Entry[InitialLength];
        private int _mask = InitialLength - 1;
        private int _stamp;
        private int _exhausted;

        /// <summary>How many of the shard's keys are marked exhausted; read under <see cref="Gate"/>.</summary>
        public int Exhausted => _exhausted;
        private int _evictHand;
        private int _reclaimHand;

        public Shard(int capacity, ulong seed0, ulong seed1) => (_capacity, _seed0, _seed1) = (capacity, seed0, seed1);

        public void DecideOne(in RateLimitCheck check, ref StoreOutcome result, long now, MemoryStore store)
        {
            var slot = Find(check.Key.Value);
            if (slot >= 0)
            {
                _table[slot].Referenced = true;
            }

            if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                result = DecideConcurrency(check, slot, now, store, commit: !check.IsProbe, ++_stamp);
                return;
            }

            var state = slot >= 0 ? _table[slot].State : default;
            var outcome = LimitMath.Decide(check.Limit, state, now, check.Cost, out var next);

            // A probe is decided with its cost and never commits.
            var committed = outcome.IsAllowed && !check.IsProbe;
            if (committed && check.Cost > 0)
            {
                slot = Store(check, slot, next, now, ++_stamp);
            }

            // Only what the key now holds: a committed decision, or a denial (which leaves the state as it was). An admitted
            // probe charged nothing, so what it would have left says nothing of the key.
            if (slot >= 0 && (committed || !outcome.IsAllowed))
            {
                MarkExhausted(slot, check.Limit, outcome);
            }

            result = new StoreOutcome(outcome, committed, 0);
        }

        public void DecideGroup(
            ReadOnlySpan<RateLimitCheck> checks,
            Span<StoreOutcome> outcomes,
            Span<LimitState> nexts,
            Span<bool> done,
            UInt128 identity,
            long now,
            MemoryStore store)
        {
            // Phase one decides every check of the identity without writing; phase two writes only if no enforced
            // check was denied. Inserting may evict, so phase one pins the keys it read with this operation's stamp.
            var stamp = ++_stamp;
            var denied = false;
            for (var k = 0; k < checks.Length; k++)
            {
                ref readonly var check = ref checks[k];
                if (done[k] || check.Key.Identity != identity)
                {
                    continue;
                }

                var slot = Find(check.Key.Value);
                if (slot >= 0)
                {
                    _table[slot].Stamp = stamp;
                    _table[slot].Referenced = true;
                }

                var outcome = check.Limit.Algorithm == LimitAlgorithm.Concurrency
                    ? DecideConcurrency(check, slot, now, store, commit: false, stamp).Outcome
                    : LimitMath.Decide(check.Limit, slot >= 0 ? _table[slot].State : default, now, check.Cost, out nexts[k]);
                // A denial shows the key as it stands; an admitted check is marked when (and if) the group commits it.
                if (slot >= 0 && !outcome.IsAllowed)
                {
                    MarkExhausted(slot, check.Limit, outcome);
                }

                denied |= !outcome.IsAllowed && !check.IsShadow;
                outcomes[k] = new StoreOutcome(outcome, outcome.IsAllowed && !check.IsProbe, 0);
            }

            for (var k = 0; k < checks.Length; k++)
            {
                ref readonly var check = ref checks[k];
                if (done[k] || check.Key.Identity != identity)
                {
                    continue;
                }

                done[k] = true;
                if (!outcomes[k].Committed)
                {
                    continue;
                }

                if (denied)
                {
                    outcomes[k] = outcomes[k] with { Committed = false };
                }
                else if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
                {
                    outcomes[k] = DecideConcurrency(check, Find(check.Key.Value), now, store, commit: true, stamp);
                }
                else if (check.Cost > 0)
                {
                    var slot = Store(check, Find(check.Key.Value), nexts[k], now, stamp);
                    if (slot >= 0)
                    {
                        MarkExhausted(slot, check.Limit, outcomes[k].Outcome);
                    }
                }
            }
        }

        public void Release(UInt128 key, long leaseId)
        {
            var slot = Find(key);
            if (slot >= 0 && _table[slot].Leases != 0 && _leaseSets[_table[slot].Leases]!.Remove(leaseId))
            {
                _table[slot].ExpiresAt = _leaseSets[_table[slot].Leases]!.LatestExpiry;
            }
        }

        private StoreOutcome DecideConcurrency(in RateLimitCheck check, int slot, long now, MemoryStore store, bool commit, int stamp)
        {
            var leases = slot >= 0 && _table[slot].Leases != 0 ? _leaseSets[_table[slot].Leases] : null;
            leases?.Purge(now);
            var outcome = LimitMath.Concurrency(check.Limit, leases?.InFlight ?? 0, leases?.EarliestExpiry ?? 0, leases?.LatestExpiry ?? 0, now, check.Cost);
            if (!commit || !outcome.IsAllowed || check.Cost == 0)
            {
                if (slot >= 0 && (commit || !outcome.IsAllowed))
                {
                    MarkExhausted(slot, check.Limit, outcome);
                }

                return new StoreOutcome(outcome, outcome.IsAllowed && !check.IsProbe, 0);
            }

            if (slot < 0)
            {
                // The operation's stamp, so the insert cannot evict a key this group has just written.
                slot = Insert(check.Key.Value, now, stamp);
                if (slot < 0)
                {
                    return new StoreOutcome(outcome, true, 0);
                }
            }

            ref var entry = ref _table[slot];
            if (entry.Leases == 0)
            {
                entry.Leases = RentLeaseSet();
            }

            var set = _leaseSets[entry.Leases]!;
            var leaseId = store.NextLeaseId();
            set.Add(leaseId, now + check.Limit.LeaseTimeoutMicroseconds, check.Cost);
            entry.ExpiresAt = set.LatestExpiry;
            MarkExhausted(slot, check.Limit, outcome);
            return new StoreOutcome(outcome, true, leaseId);
        }

        /// <summary>Writes a key's next state, inserting the key if needed; returns its slot, or -1 when it could not be kept.</summary>
        private int Store(in RateLimitCheck check, int slot, in LimitState next, long now, int stamp)
        {
            if (slot < 0)
            {
                slot = Insert(check.Key.Value, now, stamp);
                if (slot < 0)
                {
                    // Every slot is pinned by this operation: the state is not kept, so the limit errs toward admitting.
                    return -1;
                }
            }

            ref var entry = ref _table[slot];
            entry.State = next;
            entry.ExpiresAt = LimitMath.ExpiresAt(check.Limit, next);
            return slot;
        }

        /// <summary>
        /// Records whether the key at <paramref name="slot"/> has at most a quarter of its budget left after its latest
        /// decision: evicting such a key would give a client most of a budget back, so eviction spares it.
        /// </summary>
        private void MarkExhausted(int slot, Limit limit, in LimitOutcome outcome)
        {
            ref var entry = ref _table[slot];
            var exhausted = outcome.Remaining * 4 <= limit.Burst;
            if (entry.Exhausted != exhausted)
            {
                entry.Exhausted = exhausted;
                _exhausted += exhausted ? 1 : -1;
            }
        }

        private int Find(UInt128 key)
        {
            var table = _table;
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

        private int Insert(UInt128 key, long now, int stamp)
        {
            ReclaimExpired(now, stamp);
            if (Count >= _capacity && !Evict(now, stamp))
            {
                return -1;
            }

            if ((Count + 1) * 4 > _table.Length * 3)
            {
                Grow();
            }

            var i = Home(key);
            while (_table[i].Used)
            {
                i = (i + 1) & _mask;
            }

            _table[i] = new Entry { Key = key, Used = true, Stamp = stamp };
            Count++;
            return i;
        }

        private void Grow()
        {
            var old = _table;
            _table = new Entry[old.Length * 2];
            _mask = _table.Length - 1;
            foreach (ref readonly var entry in old.AsSpan())
            {
                if (!entry.Used)
                {
                    continue;
                }

                var i = Home(entry.Key);
                while (_table[i].Used)
                {
                    i = (i + 1) & _mask;
                }

                _table[i] = entry;
            }

            _evictHand &= _mask;
            _reclaimHand &= _mask;
        }

        /// <summary>
        /// Looks a few slots ahead of the clock hand for an expired key, else one not used since the hand last passed;
        /// only when every one of those was used does it sweep on, clearing use bits, as a plain clock does. Exhausted
        /// keys (see <see cref="MarkExhausted"/>) are passed over while they are at most three quarters of the shard,
        /// so however many keys a flood inserts, it evicts keys whose loss gives back little before it evicts them.
        /// </summary>
        private bool Evict(long now, int stamp)
        {
            // Bounding the exhausted keys spared keeps a quarter of the shard evictable, so the hand finds a victim in
            // a few slots on average, and a flood of exhausted keys evicts under the plain clock like any other.
            var spare = _exhausted * 4 <= Count * 3;
            var unused = -1;
            for (var step = 0; step < VictimWindow; step++)
            {
                var slot = (_evictHand + step) & _mask;
                ref var entry = ref _table[slot];
                if (!entry.Used || entry.Stamp == stamp)
                {
                    continue;
                }

                if (entry.ExpiresAt <= now)
                {
                    return EvictAt(slot);
                }

                if (unused < 0 && !entry.Referenced && !(spare && entry.Exhausted))
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
                for (var step = 0; step < 2 * _table.Length; step++)
                {
                    var slot = _evictHand;
                    _evictHand = (_evictHand + 1) & _mask;
                    ref var entry = ref _table[slot];
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
                _table[_evictHand].Referenced = false;
                _evictHand = (_evictHand + 1) & _mask;
            }

            _evictHand = (victim + 1) & _mask;
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
                ref var entry = ref _table[slot];
                if (entry.Used && entry.Stamp != stamp && entry.ExpiresAt <= now)
                {
                    Remove(slot);
                }
                else
                {
                    _reclaimHand = (slot + 1) & _mask;
                }
            }
        }

        /// <summary>Empties a slot and shifts back the entries of its probe run, so lookups never need tombstones.</summary>
        private void Remove(int slot)
        {
            if (_table[slot].Exhausted)
            {
                _exhausted--;
            }

            if (_table[slot].Leases != 0)
            {
                _freeLeaseSets.Push(_table[slot].Leases);
                _leaseSets[_table[slot].Leases]!.Clear();
            }

            var hole = slot;
            for (var i = (slot + 1) & _mask; _table[i].Used; i = (i + 1) & _mask)
            {
                var home = Home(_table[i].Key);

                // The entry at i may fill the hole unless its home lies cyclically in (hole, i].
                var stays = hole <= i ? home > hole && home <= i : home > hole || home <= i;
                if (!stays)
                {
                    _table[hole] = _table[i];
                    hole = i;
                }
            }

            _table[hole] = default;
            Count--;
        }

        private int RentLeaseSet()
        {
            if (_freeLeaseSets.TryPop(out var index))
            {
                return index;
            }

            _leaseSets.Add(new LeaseSet());
            return _leaseSets.Count - 1;
        }

        public int LongestProbe()
        {
            var longest = 0;
            for (var i = 0; i < _table.Length; i++)
            {
                if (_table[i].Used)
                {
                    longest = Math.Max(longest, (i - Home(_table[i].Key)) & _mask);
                }
            }

            return longest;
        }

        // The keyed mix of both halves: the table stays spread even for keys chosen to collide under public constants.
        private int Home(UInt128 key) => Mix(key, _seed0, _seed1) & _mask;
    }
}
