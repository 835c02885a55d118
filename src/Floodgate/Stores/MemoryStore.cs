using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Floodgate.Algorithms;
using Floodgate.Stores.Memory;

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
public sealed class MemoryStore : IRateLimitStore, IResettableStore
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
                count += shard.Count;
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
    public ValueTask<bool> ResetAsync(RateLimitCheck check, CancellationToken cancellationToken = default)
    {
        var shard = ShardFor(check.Key.Identity);
        lock (shard.StateLock)
        {
            return new ValueTask<bool>(shard.Reset(check.Key.Value));
        }
    }

    /// <inheritdoc/>
    public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        var shard = ShardFor(check.Key.Identity);
        lock (shard.StateLock)
        {
            shard.Release(check.Key.Value, leaseId);
        }

        return default;
    }

    /// <inheritdoc/>
    /// <remarks>Completes synchronously, allocating nothing.</remarks>
    public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        if (leaseId == 0 || check.Limit.Algorithm != Limits.LimitAlgorithm.Concurrency)
        {
            return new ValueTask<LeaseRenewal>(LeaseRenewal.NotHeld);
        }

        var now = NowMicroseconds();
        var shard = ShardFor(check.Key.Identity);
        bool renewed;
        lock (shard.StateLock)
        {
            renewed = shard.Renew(check.Key.Value, leaseId, now, now + check.Limit.LeaseTimeoutMicroseconds);
        }

        return new ValueTask<LeaseRenewal>(renewed ? LeaseRenewal.Renewed : LeaseRenewal.NotHeld);
    }

    /// <inheritdoc/>
    /// <remarks>Completes synchronously, allocating nothing.</remarks>
    public ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken = default)
    {
        Settle(check, delta, NowMicroseconds());
        return new ValueTask<CostSettlement>(CostSettlement.Settled);
    }

    /// <summary>Settles at an explicit time, for tests that compare stores on one clock.</summary>
    internal void Settle(in RateLimitCheck check, long delta, long now)
    {
        if (check.Limit.Algorithm == Limits.LimitAlgorithm.Concurrency)
        {
            throw new ArgumentException("A concurrency check is not settled: its cost is the permits its lease holds.", nameof(check));
        }

        if (check.Limit.Algorithm == Limits.LimitAlgorithm.SlidingLog)
        {
            throw new ArgumentException("A sliding_log check is not settled: its log holds the units admitted, each at its time.", nameof(check));
        }

        if (delta == 0)
        {
            return;
        }

        var shard = ShardFor(check.Key.Identity);
        lock (shard.StateLock)
        {
            shard.Settle(check, delta, now);
        }
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
        lock (shard.StateLock)
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
            lock (shard.StateLock)
            {
                shard.DecideGroup(checks[i..], outcomes[i..], nexts[i..], done[i..], identity, now, this);
            }
        }
    }

    private long NowMicroseconds() => _tickClock
        ? TickClock.NowMicroseconds()
        : (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    /// <summary>A lease id no lease of this store has had.</summary>
    internal long NextLeaseId() => Interlocked.Increment(ref _nextLeaseId);

    private Shard ShardFor(UInt128 identity) => _shards[KeyedMix.Of(identity, _shardSeed0, _shardSeed1) & _shardMask];

    /// <summary>The keys each shard holds, for tests.</summary>
    internal int[] ShardCounts() => [.. _shards.Select(s => s.Count)];

    /// <summary>How many keys are marked exhausted, for tests.</summary>
    internal int ExhaustedKeys()
    {
        var exhausted = 0;
        foreach (var shard in _shards)
        {
            lock (shard.StateLock)
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
            lock (shard.StateLock)
            {
                longest = Math.Max(longest, shard.LongestProbe());
            }
        }

        return longest;
    }
}
