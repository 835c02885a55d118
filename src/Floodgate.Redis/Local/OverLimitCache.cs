using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Stores;

namespace Floodgate.Redis;

/// <summary>
/// Keys that Redis found over their limit, answered in this process until they would fit again.
/// </summary>
/// <remarks>
/// <para>
/// An entry keeps the state Redis read and the server time of that read. A later check of the same key, limit and cost
/// is decided by <see cref="LimitMath.Decide"/> on that state at the server time estimated by this process's clock, so
/// the cached answer carries exactly the retry-after (decreasing as time passes) that Redis would give if no other
/// replica had spent since. Other replicas can only push a key further over its limit, so a cached denial is never
/// wrong; at worst it says to retry a little early. The moment the math says the cost fits, the entry is dropped and
/// the next check goes to Redis.
/// </para>
/// <para>Bounded: when full, expired entries are swept out; if none are expired, new entries are not cached.</para>
/// </remarks>
internal sealed class OverLimitCache
{
    /// <summary>How long a probe's denial is remembered at most: 10 s.</summary>
    internal const long ProbeMemoryMicroseconds = 10_000_000;

    private readonly Shard[] _shards;
    private readonly int _perShard;

    public OverLimitCache(int capacity)
    {
        var shards = capacity >= 1024 ? 64 : 1;
        _shards = new Shard[shards];
        for (var i = 0; i < shards; i++)
        {
            _shards[i] = new Shard();
        }

        _perShard = Math.Max(1, capacity / shards);
    }

    public int Count
    {
        get
        {
            var count = 0;
            foreach (var shard in _shards)
            {
                lock (shard.EntriesLock)
                {
                    count += shard.Entries.Count;
                }
            }

            return count;
        }
    }

    /// <summary>Answers <paramref name="check"/> from the cache when the key is known to be over its limit for this cost.</summary>
    public bool TryDeny(in RateLimitCheck check, long localNow, out LimitOutcome outcome)
    {
        var shard = ShardFor(check.Key);

        // Most of the time nothing is over its limit: every request reads the cache, so an empty shard must cost no lock.
        if (Volatile.Read(ref shard.Live) == 0)
        {
            outcome = default;
            return false;
        }

        lock (shard.EntriesLock)
        {
            if (shard.Entries.TryGetValue(check.Key, out var entry) && ReferenceEquals(entry.Limit, check.Limit) && entry.Cost == check.Cost
                && entry.DeniedUntil > localNow)
            {
                var now = entry.ServerNow + (localNow - entry.LocalAt);
                outcome = LimitMath.Decide(check.Limit, entry.State, now, check.Cost, out _);
                if (!outcome.IsAllowed)
                {
                    return true;
                }

                shard.Remove(check.Key);
            }
        }

        outcome = default;
        return false;
    }

    /// <summary>Records what Redis decided for <paramref name="check"/>: a denial is cached, anything else forgets the key.</summary>
    public void Observe(in RateLimitCheck check, in LimitState state, long serverNow, long localNow, in LimitOutcome outcome, bool committed)
    {
        var shard = ShardFor(check.Key);
        var forget = outcome.IsAllowed || outcome.RetryAfterMicroseconds <= 0;
        if (forget && Volatile.Read(ref shard.Live) == 0)
        {
            return;
        }

        lock (shard.EntriesLock)
        {
            if (forget)
            {
                if (committed || outcome.IsAllowed)
                {
                    shard.Remove(check.Key);
                }

                return;
            }

            if (shard.Entries.Count >= _perShard && !shard.Entries.ContainsKey(check.Key))
            {
                shard.Sweep(localNow);
                if (shard.Entries.Count >= _perShard)
                {
                    return;
                }
            }

            // A probe's denial (a ban) may last days: it is remembered for a short while only, so a ban lifted in Redis
            // is seen soon and long bans cannot crowd the ordinary over-limit keys out of the cache.
            var remembered = check.IsProbe ? Math.Min(outcome.RetryAfterMicroseconds, ProbeMemoryMicroseconds) : outcome.RetryAfterMicroseconds;
            shard.Entries[check.Key] = new Entry(check.Limit, check.Cost, state, serverNow, localNow, localNow + remembered);
            Volatile.Write(ref shard.Live, shard.Entries.Count);
        }
    }

    /// <summary>Forgets <paramref name="key"/>: its state changed here.</summary>
    public void Forget(in StoreKey key)
    {
        var shard = ShardFor(key);
        if (Volatile.Read(ref shard.Live) == 0)
        {
            return;
        }

        lock (shard.EntriesLock)
        {
            shard.Remove(key);
        }
    }

    private Shard ShardFor(in StoreKey key) => _shards[(int)((ulong)key.Value % (ulong)_shards.Length)];

    private readonly record struct Entry(Floodgate.Limits.Limit Limit, long Cost, LimitState State, long ServerNow, long LocalAt, long DeniedUntil);

    private sealed class Shard
    {
        /// <summary>Guards <see cref="Entries"/>.</summary>
        public readonly Lock EntriesLock = new();
        public readonly Dictionary<StoreKey, Entry> Entries = [];

        /// <summary>How many entries the shard holds, written under the lock, read without it to skip empty shards.</summary>
        public int Live;

        public void Remove(in StoreKey key)
        {
            if (Entries.Remove(key))
            {
                Volatile.Write(ref Live, Entries.Count);
            }
        }

        public void Sweep(long localNow)
        {
            List<StoreKey>? expired = null;
            foreach (var (key, entry) in Entries)
            {
                if (entry.DeniedUntil <= localNow)
                {
                    (expired ??= []).Add(key);
                }
            }

            if (expired is not null)
            {
                foreach (var key in expired)
                {
                    Remove(key);
                }
            }
        }
    }
}
