using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Stores.Memory;

/// <summary>
/// The decisions on one shard's keys: each check is decided by <see cref="LimitMath"/> (or, for concurrency, against its
/// key's <see cref="LeaseSet"/>) on the state the <see cref="ShardTable"/> holds, and what commits is written back; a key
/// inserted when the shard is full takes the place <see cref="ClockEviction"/> makes.
/// </summary>
/// <remarks>
/// Every method but <see cref="Count"/> runs under <see cref="StateLock"/>. All keys of one identity live in one shard,
/// so the atomic decision of an identity's checks takes one lock.
/// </remarks>
internal sealed class Shard
{
    /// <summary>Guards the shard's keys, their state and leases, and its eviction hands.</summary>
    public readonly Lock StateLock = new();

    private readonly int _capacity;
    private readonly ShardTable _table;
    private readonly LeaseSetPool _leases = new();
    private readonly SlidingLogPool _logs = new();
    private readonly ClockEviction _clock;
    private int _stamp;

    public Shard(int capacity, ulong seed0, ulong seed1)
    {
        _capacity = capacity;
        _table = new ShardTable(seed0, seed1);
        _clock = new ClockEviction(_table, _leases, _logs);
    }

    /// <summary>How many keys the shard holds; safe to read without the lock.</summary>
    public int Count => Volatile.Read(ref _table.Count);

    /// <summary>How many of the shard's keys are marked exhausted.</summary>
    public int Exhausted => _clock.Exhausted;

    /// <summary>The longest distance of any key from its home slot, for tests.</summary>
    public int LongestProbe() => _table.LongestProbe();

    public void DecideOne(in RateLimitCheck check, ref StoreOutcome result, long now, MemoryStore store)
    {
        var slot = _table.Find(check.Key.Value);
        if (slot >= 0)
        {
            _table[slot].Referenced = true;
        }

        if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
        {
            result = DecideConcurrency(check, slot, now, store, commit: !check.IsProbe, ++_stamp);
            return;
        }

        if (check.Limit.Algorithm == LimitAlgorithm.SlidingLog)
        {
            result = DecideLog(check, slot, now, write: true, ++_stamp);
            return;
        }

        var state = slot >= 0 ? _table[slot].State : default;
        var outcome = LimitMath.Decide(check.Limit, state, now, check.Cost, out var next);

        // A probe is decided with its cost and never commits; an always-charged check always does.
        var committed = Commits(check, outcome);
        if (committed && !outcome.IsAllowed)
        {
            next = LimitMath.Settle(check.Limit, state, now, check.Cost);
        }

        if (committed && check.Cost > 0)
        {
            slot = Store(check, slot, next, now, ++_stamp);
        }

        // Only what the key now holds: a committed decision, or a denial (which leaves the state as it was). An admitted
        // probe charged nothing, so what it would have left says nothing of the key.
        if (slot >= 0 && (committed || !outcome.IsAllowed))
        {
            _clock.MarkExhausted(slot, check.Limit, outcome);
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

            var slot = _table.Find(check.Key.Value);
            if (slot >= 0)
            {
                _table[slot].Stamp = stamp;
                _table[slot].Referenced = true;
            }

            var state = slot >= 0 ? _table[slot].State : default;
            var outcome = check.Limit.Algorithm switch
            {
                LimitAlgorithm.Concurrency => DecideConcurrency(check, slot, now, store, commit: false, stamp).Outcome,
                LimitAlgorithm.SlidingLog => DecideLog(check, slot, now, write: false, stamp).Outcome,
                _ => LimitMath.Decide(check.Limit, state, now, check.Cost, out nexts[k]),
            };
            // A denial shows the key as it stands; an admitted check is marked when (and if) the group commits it.
            if (slot >= 0 && !outcome.IsAllowed)
            {
                _clock.MarkExhausted(slot, check.Limit, outcome);
            }

            denied |= !outcome.IsAllowed && !check.IsShadow;
            var commits = Commits(check, outcome);
            if (commits && !outcome.IsAllowed && check.Limit.Algorithm != LimitAlgorithm.SlidingLog)
            {
                nexts[k] = LimitMath.Settle(check.Limit, state, now, check.Cost);
            }

            outcomes[k] = new StoreOutcome(outcome, commits, 0);
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

            if (denied && !IsCharged(check))
            {
                outcomes[k] = outcomes[k] with { Committed = false };
            }
            else if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                outcomes[k] = DecideConcurrency(check, _table.Find(check.Key.Value), now, store, commit: true, stamp);
            }
            else if (check.Limit.Algorithm == LimitAlgorithm.SlidingLog)
            {
                outcomes[k] = DecideLog(check, _table.Find(check.Key.Value), now, write: true, stamp);
            }
            else if (check.Cost > 0)
            {
                var slot = Store(check, _table.Find(check.Key.Value), nexts[k], now, stamp);
                if (slot >= 0)
                {
                    _clock.MarkExhausted(slot, check.Limit, outcomes[k].Outcome);
                }
            }
        }
    }

    /// <summary>Whether a check is charged however it is decided: always charged, not a probe, not concurrency.</summary>
    private static bool IsCharged(in RateLimitCheck check) =>
        check.IsAlwaysCharged && !check.IsProbe && check.Limit.Algorithm != LimitAlgorithm.Concurrency;

    /// <summary>Whether a check commits on its own outcome (its identity's other checks may still stop it).</summary>
    private static bool Commits(in RateLimitCheck check, in LimitOutcome outcome) =>
        IsCharged(check) || (outcome.IsAllowed && !check.IsProbe);

    /// <summary>Corrects a key's state by a settled cost (<see cref="LimitMath.Settle"/>), inserting the key if needed.</summary>
    public void Settle(in RateLimitCheck check, long delta, long now)
    {
        var slot = _table.Find(check.Key.Value);
        var next = LimitMath.Settle(check.Limit, slot >= 0 ? _table[slot].State : default, now, delta);
        slot = Store(check, slot, next, now, ++_stamp);
        if (slot >= 0)
        {
            // An overdrawn key is exhausted: evicting it would forgive the overdraft.
            _table[slot].Referenced = true;
            _clock.MarkExhausted(slot, check.Limit, LimitMath.Decide(check.Limit, next, now, 0, out _));
        }
    }

    /// <summary>Forgets <paramref name="key"/>'s state and leases; <see langword="false"/> when the shard does not hold it.</summary>
    public bool Reset(UInt128 key)
    {
        var slot = _table.Find(key);
        if (slot < 0)
        {
            return false;
        }

        _clock.Remove(slot);
        return true;
    }

    public void Release(UInt128 key, long leaseId)
    {
        var slot = _table.Find(key);
        if (slot >= 0 && _table[slot].Leases != 0 && _leases[_table[slot].Leases].Remove(leaseId))
        {
            _table[slot].ExpiresAt = _leases[_table[slot].Leases].LatestExpiry;
        }
    }

    /// <summary>
    /// Renews the lease <paramref name="leaseId"/> of <paramref name="key"/> to <paramref name="expiry"/>, unless it is no
    /// longer held: expired leases are purged first, so one that has expired is not brought back.
    /// </summary>
    public bool Renew(UInt128 key, long leaseId, long now, long expiry)
    {
        var slot = _table.Find(key);
        if (slot < 0 || _table[slot].Leases == 0)
        {
            return false;
        }

        ref var entry = ref _table[slot];
        var set = _leases[entry.Leases];
        set.Purge(now);
        var renewed = set.Renew(leaseId, expiry);

        // The key lives as long as its latest lease, and a key whose lease is being renewed is in use.
        entry.ExpiresAt = set.LatestExpiry;
        entry.Referenced |= renewed;
        return renewed;
    }

    private StoreOutcome DecideConcurrency(in RateLimitCheck check, int slot, long now, MemoryStore store, bool commit, int stamp)
    {
        var leases = slot >= 0 && _table[slot].Leases != 0 ? _leases[_table[slot].Leases] : null;
        leases?.Purge(now);
        var outcome = LimitMath.Concurrency(check.Limit, leases?.InFlight ?? 0, leases?.EarliestExpiry ?? 0, leases?.LatestExpiry ?? 0, now, check.Cost);
        if (!commit || !outcome.IsAllowed || check.Cost == 0)
        {
            if (slot >= 0 && (commit || !outcome.IsAllowed))
            {
                _clock.MarkExhausted(slot, check.Limit, outcome);
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
            entry.Leases = _leases.Rent();
        }

        var set = _leases[entry.Leases];
        var leaseId = store.NextLeaseId();
        set.Add(leaseId, now + check.Limit.LeaseTimeoutMicroseconds, check.Cost);
        entry.ExpiresAt = set.LatestExpiry;
        _clock.MarkExhausted(slot, check.Limit, outcome);
        return new StoreOutcome(outcome, true, leaseId);
    }

    /// <summary>
    /// Decides a sliding-log check on its key's <see cref="SlidingLogRing"/>; with <paramref name="write"/>, appends what a
    /// decision that commits appends (<see cref="LimitMath.SlidingLogAppended"/>), dropping the entries out of the window.
    /// </summary>
    private StoreOutcome DecideLog(in RateLimitCheck check, int slot, long now, bool write, int stamp)
    {
        var limit = check.Limit;
        var log = slot >= 0 && _table[slot].Log != 0 ? _logs[_table[slot].Log] : null;
        var newest = log?.Newest ?? 0;
        var at = LimitMath.SlidingLogNow(now, newest);
        var horizon = at - limit.PeriodMicroseconds;
        var count = log?.CountAfter(horizon) ?? 0;
        var blocking = LimitMath.SlidingLogBlockingIndex(limit, count, check.Cost);
        var outcome = LimitMath.SlidingLog(limit, count, blocking >= 0 ? log!.At(log.Count - count + blocking) : 0, newest, now, check.Cost);
        var commits = Commits(check, outcome);
        var appended = LimitMath.SlidingLogAppended(limit, count, check.Cost);
        if (write && commits && appended > 0)
        {
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
            if (entry.Log == 0)
            {
                entry.Log = _logs.Rent();
            }

            _logs[entry.Log].Append(at, appended, horizon);
            entry.ExpiresAt = at + limit.PeriodMicroseconds;
        }

        if (slot >= 0 && ((write && commits) || !outcome.IsAllowed))
        {
            _clock.MarkExhausted(slot, limit, outcome);
        }

        return new StoreOutcome(outcome, commits, 0);
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

    /// <summary>Inserts a key in the room eviction makes; -1 when the shard is full of keys this operation holds.</summary>
    private int Insert(UInt128 key, long now, int stamp) =>
        _clock.MakeRoom(_capacity, now, stamp) ? _table.Add(key, stamp) : -1;
}
