using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Stores;

public sealed partial class MemoryStoreTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    private static StoreKey Key(int identity, int value) => new((UInt128)identity, ((UInt128)identity << 32) | (uint)value);

    private static StoreOutcome DecideOne(MemoryStore store, Limit limit, StoreKey key, long cost = 1, bool shadow = false)
    {
        var outcomes = new StoreOutcome[1];
        store.Decide([new RateLimitCheck(limit, key, cost, shadow)], outcomes);
        return outcomes[0];
    }

    [Fact]
    public void Many_threads_on_one_key_admit_exactly_the_limit()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(timeProvider: time);
        var limit = Limit.FixedWindow(Rate.Parse("5000/h"));
        var key = Key(1, 1);
        const int Threads = 8;
        const int AttemptsPerThread = 2000;
        var admitted = 0;
        using var barrier = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            var outcomes = new StoreOutcome[1];
            RateLimitCheck[] checks = [new(limit, key, 1, false)];
            barrier.SignalAndWait();
            for (var i = 0; i < AttemptsPerThread; i++)
            {
                store.Decide(checks, outcomes);
                if (outcomes[0].Committed)
                {
                    Interlocked.Increment(ref admitted);
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(5000, admitted);
    }

    [Fact]
    public void Many_threads_on_one_gcra_key_admit_exactly_the_burst()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(timeProvider: time);
        var limit = Limit.Gcra(Rate.Parse("3000/h"));
        var key = Key(7, 7);
        var admitted = 0;
        Parallel.For(0, 12_000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            if (DecideOne(store, limit, key).Committed)
            {
                Interlocked.Increment(ref admitted);
            }
        });
        Assert.Equal(3000, admitted);
    }

    [Fact]
    public void The_checks_of_one_identity_are_all_or_nothing()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var loose = Limit.FixedWindow(Rate.Parse("10/min"));
        var tight = Limit.FixedWindow(Rate.Parse("1/min"));
        RateLimitCheck[] checks = [new(loose, Key(1, 1), 1, false), new(tight, Key(1, 2), 1, false)];
        var outcomes = new StoreOutcome[2];
        store.Decide(checks, outcomes);
        Assert.True(outcomes[0].Committed && outcomes[1].Committed);

        store.Decide(checks, outcomes);
        Assert.True(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.False(outcomes[1].Outcome.IsAllowed);

        // The loose limit was charged once, not twice.
        Assert.Equal(9, DecideOne(store, loose, Key(1, 1), cost: 0).Outcome.Remaining);
    }

    [Fact]
    public void A_shadow_check_that_does_not_fit_blocks_nothing()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var loose = Limit.FixedWindow(Rate.Parse("10/min"));
        var tight = Limit.FixedWindow(Rate.Parse("1/min"));
        RateLimitCheck[] checks = [new(loose, Key(1, 1), 1, false), new(tight, Key(1, 2), 1, true)];
        var outcomes = new StoreOutcome[2];
        store.Decide(checks, outcomes);
        store.Decide(checks, outcomes);
        Assert.True(outcomes[0].Committed);
        Assert.False(outcomes[1].Outcome.IsAllowed);
        Assert.Equal(8, DecideOne(store, loose, Key(1, 1), cost: 0).Outcome.Remaining);
    }

    [Fact]
    public void Different_identities_in_one_batch_are_independent()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var limit = Limit.FixedWindow(Rate.Parse("1/min"));
        DecideOne(store, limit, Key(2, 1));
        RateLimitCheck[] checks = [new(limit, Key(1, 1), 1, false), new(limit, Key(2, 1), 1, false)];
        var outcomes = new StoreOutcome[2];
        store.Decide(checks, outcomes);
        Assert.True(outcomes[0].Committed);
        Assert.False(outcomes[1].Committed);
    }

    [Fact]
    public void Concurrency_leases_are_released_or_expire()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(timeProvider: time);
        var limit = Limit.Concurrency(2, TimeSpan.FromSeconds(10));
        var key = Key(3, 3);
        var first = DecideOne(store, limit, key);
        var second = DecideOne(store, limit, key);
        Assert.NotEqual(0, first.LeaseId);
        Assert.NotEqual(first.LeaseId, second.LeaseId);
        var third = DecideOne(store, limit, key);
        Assert.False(third.Outcome.IsAllowed);
        Assert.Equal(LimitMath.MaxConcurrencyRetryMicroseconds, third.Outcome.RetryAfterMicroseconds);

        store.ReleaseAsync(new RateLimitCheck(limit, key, 1, false), first.LeaseId);
        var afterRelease = DecideOne(store, limit, key);
        Assert.True(afterRelease.Outcome.IsAllowed);
        Assert.Equal(0, afterRelease.Outcome.Remaining);

        // Neither remaining lease is released: both expire 10 s after they were taken.
        time.Advance(TimeSpan.FromSeconds(9.5));
        var nearExpiry = DecideOne(store, limit, key);
        Assert.False(nearExpiry.Outcome.IsAllowed);
        Assert.Equal(500_000, nearExpiry.Outcome.RetryAfterMicroseconds);
        time.Advance(TimeSpan.FromSeconds(0.5));
        var expired = DecideOne(store, limit, key, cost: 2);
        Assert.True(expired.Outcome.IsAllowed);

        // Releasing twice, or releasing an expired lease, changes nothing.
        store.ReleaseAsync(new RateLimitCheck(limit, key, 1, false), first.LeaseId);
        store.ReleaseAsync(new RateLimitCheck(limit, key, 1, false), second.LeaseId);
        Assert.False(DecideOne(store, limit, key).Outcome.IsAllowed);
    }

    [Fact]
    public void Leases_of_different_timeouts_on_one_key_give_the_exact_retry_and_reset()
    {
        // The same key under a limit whose lease timeout was shortened by a reload: expiries arrive out of order.
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(timeProvider: time);
        var before = Limit.Concurrency(3, TimeSpan.FromSeconds(10));
        var after = Limit.Concurrency(3, TimeSpan.FromSeconds(2));
        var key = Key(3, 4);
        var longLease = DecideOne(store, before, key);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(DecideOne(store, after, key).Outcome.IsAllowed);
        Assert.True(DecideOne(store, after, key).Outcome.IsAllowed);

        // Full: retry when the earliest lease ends (3 s), reset when the latest does (10 s).
        time.Advance(TimeSpan.FromSeconds(1.5));
        var denied = DecideOne(store, after, key);
        Assert.False(denied.Outcome.IsAllowed);
        Assert.Equal(500_000, denied.Outcome.RetryAfterMicroseconds);
        Assert.Equal(7_500_000, denied.Outcome.ResetAfterMicroseconds);

        // Releasing the latest lease brings the reset back to the latest of those left.
        store.ReleaseAsync(new RateLimitCheck(before, key, 1, false), longLease.LeaseId);
        var released = DecideOne(store, after, key, cost: 0);
        Assert.Equal(1, released.Outcome.Remaining);
        Assert.Equal(500_000, released.Outcome.ResetAfterMicroseconds);

        time.Advance(TimeSpan.FromSeconds(0.5));
        var expired = DecideOne(store, after, key, cost: 0);
        Assert.Equal(3, expired.Outcome.Remaining);
        Assert.Equal(0, expired.Outcome.ResetAfterMicroseconds);
    }

    [Fact]
    public void A_concurrency_key_inserted_by_a_group_does_not_evict_a_key_the_group_just_wrote()
    {
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 2, Shards = 1 }, new FakeTimeProvider(Start));
        var hourly = Limit.FixedWindow(Rate.Parse("3/h"));
        var other = Key(99, 1);
        DecideOne(store, hourly, other);
        DecideOne(store, hourly, other);

        // One atomic group inserts two new keys into a full store: the fixed window first, then the concurrency key.
        var outcomes = new StoreOutcome[2];
        store.Decide([new RateLimitCheck(hourly, Key(1, 10), 3, false), new RateLimitCheck(Limit.Concurrency(5), Key(1, 11), 1, false)], outcomes);
        Assert.True(outcomes[0].Committed && outcomes[1].Committed);

        // The group's own write survives its own insert: the 3 spent stay spent, and the lease is held.
        Assert.Equal(0, DecideOne(store, hourly, Key(1, 10), cost: 0).Outcome.Remaining);
        Assert.Equal(4, DecideOne(store, Limit.Concurrency(5), Key(1, 11), cost: 0).Outcome.Remaining);
    }

    [Fact]
    public void A_decision_on_an_existing_key_allocates_nothing()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        RateLimitCheck[] single = [new(Limit.Gcra(Rate.Parse("1000000/h")), Key(9, 1), 1, false)];
        RateLimitCheck[] group =
        [
            new(Limit.SlidingWindow(Rate.Parse("1000000/h")), Key(9, 2), 1, false),
            new(Limit.FixedWindow(Rate.Parse("1000000/h")), Key(9, 3), 1, false),
            new(Limit.Concurrency(10), Key(9, 4), 0, false),
            new(Limit.Gcra(Rate.Parse("1/h"), 1), Key(9, 5), 1, false) { IsProbe = true },
            new(Limit.Concurrency(10), Key(9, 6), 1, false) { IsProbe = true },
        ];
        RateLimitCheck[] probe = [new(Limit.FixedWindow(Rate.Parse("1/h")), Key(10, 1), 1, false) { IsProbe = true }];
        var outcomes = new StoreOutcome[5];
        store.Decide(single, outcomes);
        store.Decide(group, outcomes);
        store.Decide(probe, outcomes.AsSpan(4));
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            store.Decide(single, outcomes);
            store.Decide(group, outcomes);
            store.Decide(probe, outcomes.AsSpan(4));
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(outcomes[0].Committed);
    }

    [Fact]
    public void Daily_and_monthly_quotas_on_one_calendar_allocate_nothing()
    {
        // Every UTC quota shares QuotaCalendar.Utc: its cached period must not flip between a day and a month.
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        RateLimitCheck[] group =
        [
            new(Limit.Quota(Rate.Parse("100000/day"), QuotaCalendar.Utc), Key(30, 1), 1, false),
            new(Limit.Quota(Rate.Parse("1000000/month"), QuotaCalendar.Utc), Key(30, 2), 1, false),
            new(Limit.Quota(Rate.Parse("1000000/week"), QuotaCalendar.Utc), Key(30, 3), 1, false),
        ];
        RateLimitCheck[] yearly = [new(Limit.Quota(Rate.Parse("1000000/year"), QuotaCalendar.Utc), Key(31, 1), 1, false)];
        var outcomes = new StoreOutcome[3];
        store.Decide(group, outcomes);
        store.Decide(yearly, outcomes);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            store.Decide(group, outcomes);
            store.Decide(yearly, outcomes);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(outcomes[0].Committed);
    }

    [Fact]
    public void A_probe_is_decided_with_its_cost_and_never_commits()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var limit = Limit.FixedWindow(Rate.Parse("3/h"));
        var key = Key(20, 1);
        Assert.True(DecideOne(store, limit, key, cost: 2).Committed);

        // Alone: 1 more fits, 2 do not; neither probe spends anything.
        var fits = Probe(store, new RateLimitCheck(limit, key, 1, false));
        Assert.True(fits.Outcome.IsAllowed);
        Assert.False(fits.Committed);
        Assert.Equal(0, fits.Outcome.Remaining);
        var over = Probe(store, new RateLimitCheck(limit, key, 2, false));
        Assert.False(over.Outcome.IsAllowed);
        Assert.False(over.Committed);
        Assert.Equal(1, DecideOne(store, limit, key, cost: 0).Outcome.Remaining);

        // A new key probed stays absent.
        var count = store.Count;
        Assert.True(Probe(store, new RateLimitCheck(limit, Key(20, 2), 1, false)).Outcome.IsAllowed);
        Assert.Equal(count, store.Count);

        // In a group: an allowed probe commits nothing while its siblings commit.
        var sibling = new RateLimitCheck(Limit.FixedWindow(Rate.Parse("10/h")), Key(20, 3), 1, false);
        var outcomes = new StoreOutcome[2];
        store.Decide([new RateLimitCheck(limit, key, 1, false) { IsProbe = true }, sibling], outcomes);
        Assert.True(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.True(outcomes[1].Committed);
        Assert.Equal(1, DecideOne(store, limit, key, cost: 0).Outcome.Remaining);
        Assert.Equal(9, DecideOne(store, sibling.Limit, sibling.Key, cost: 0).Outcome.Remaining);

        // A denied probe denies its identity's group, as an enforced check does; a shadow probe does not.
        store.Decide([new RateLimitCheck(limit, key, 2, false) { IsProbe = true }, sibling], outcomes);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[1].Outcome.IsAllowed);
        Assert.False(outcomes[1].Committed);
        store.Decide([new RateLimitCheck(limit, key, 2, true) { IsProbe = true }, sibling], outcomes);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[1].Committed);
        Assert.Equal(8, DecideOne(store, sibling.Limit, sibling.Key, cost: 0).Outcome.Remaining);
        Assert.Equal(1, DecideOne(store, limit, key, cost: 0).Outcome.Remaining);
    }

    [Fact]
    public void A_concurrency_probe_takes_no_lease()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var limit = Limit.Concurrency(1);
        var key = Key(21, 1);
        var probe = new RateLimitCheck(limit, key, 1, false) { IsProbe = true };
        var alone = DecideOne(store, limit, key);
        Assert.True(alone.Committed);
        Assert.NotEqual(0, alone.LeaseId);
        store.ReleaseAsync(probe, alone.LeaseId);

        // Probed alone and in a group: allowed, no lease, and the one permit stays free.
        var probed = Probe(store, probe);
        Assert.True(probed.Outcome.IsAllowed);
        Assert.False(probed.Committed);
        Assert.Equal(0, probed.LeaseId);
        var outcomes = new StoreOutcome[2];
        store.Decide([probe, new RateLimitCheck(Limit.FixedWindow(Rate.Parse("10/h")), Key(21, 2), 1, false)], outcomes);
        Assert.True(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.Equal(0, outcomes[0].LeaseId);
        Assert.True(outcomes[1].Committed);
        Assert.True(DecideOne(store, limit, key).Committed);

        // Held: the probe is denied.
        Assert.False(Probe(store, probe).Outcome.IsAllowed);
    }

    [Fact]
    public async Task A_denied_probe_stage_stops_the_later_stages()
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var ban = Limit.Gcra(new Rate(1, 60, RateUnit.Second), 1);
        var banKey = Key(22, 1);
        var user = new RateLimitCheck(Limit.FixedWindow(Rate.Parse("10/h")), Key(23, 1), 1, false);
        RateLimitCheck[] checks = [new(ban, banKey, 1, false) { IsProbe = true }, user];
        int[] stages = [1, 2];

        // Not banned: the probe is allowed and commits nothing, the user stage is charged.
        var outcomes = new StoreOutcome[2];
        Assert.Equal(2, await store.DecideStagesAsync(checks, stages, outcomes));
        Assert.False(outcomes[0].Committed);
        Assert.True(outcomes[1].Committed);
        Assert.True(DecideOne(store, ban, banKey).Committed);

        // Banned: the first stage rejects, the user stage is neither decided nor charged.
        outcomes = new StoreOutcome[2];
        Assert.Equal(1, await store.DecideStagesAsync(checks, stages, outcomes));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal(60_000_000, outcomes[0].Outcome.RetryAfterMicroseconds);
        Assert.Equal(default, outcomes[1]);
        Assert.Equal(9, DecideOne(store, user.Limit, user.Key, cost: 0).Outcome.Remaining);
    }

    private static StoreOutcome Probe(MemoryStore store, RateLimitCheck check)
    {
        var outcomes = new StoreOutcome[1];
        store.Decide([check with { IsProbe = true }], outcomes);
        return outcomes[0];
    }

    // Key hashes are public functions of what a client sends. Before the slot and shard were keyed with secret seeds,
    // they depended on lo ^ hi of the hash alone, so a client could precompute keys sharing one slot or one shard.
    private const ulong PublicFold = 0x5DEE_CE66_D00D_F00DUL;

    private static UInt128 CollidingUnderPublicConstants(int i) => ((UInt128)(ulong)i << 64) | ((ulong)i ^ PublicFold);

    [Fact]
    public void Keys_that_collide_under_public_constants_do_not_share_a_probe_run()
    {
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 20_000, Shards = 1 }, new FakeTimeProvider(Start));
        var limit = Limit.FixedWindow(Rate.Parse("5/15min"));
        for (var i = 1; i <= 4000; i++)
        {
            Assert.True(DecideOne(store, limit, new StoreKey(1, CollidingUnderPublicConstants(i))).Committed);
        }

        // Every key once had one home slot, so the 4000th probed past 3999 others on every lookup; spread over
        // 8192 slots at random, the longest run is a handful of slots.
        Assert.Equal(4000, store.Count);
        Assert.True(store.LongestProbe() < 64, $"A key lies {store.LongestProbe()} slots from its home.");
    }

    [Fact]
    public void Identities_that_collide_under_public_constants_do_not_share_a_shard()
    {
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 64 * 100, Shards = 64 }, new FakeTimeProvider(Start));
        var limit = Limit.FixedWindow(Rate.Parse("5/15min"));
        for (var i = 1; i <= 3000; i++)
        {
            var identity = CollidingUnderPublicConstants(i);
            Assert.True(DecideOne(store, limit, new StoreKey(identity, identity)).Committed);
        }

        // In one shard of 100 keys they would evict one another down to 100; spread over 64 shards, none is evicted.
        Assert.Equal(3000, store.Count);
        Assert.True(store.ShardCounts().Max() < 100, string.Join(", ", store.ShardCounts()));
    }

    [Fact]
    public void Options_are_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryStore(new MemoryStoreOptions { MaxEntries = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MemoryStore(new MemoryStoreOptions { Shards = -1 }));
        Assert.Equal(4, new MemoryStore(new MemoryStoreOptions { MaxEntries = 4 }).MaxEntries);
    }
}
