using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Stores;

/// <summary>The memory store at its capacity: eviction, exhausted keys, reclaiming expired ones.</summary>
public sealed partial class MemoryStoreTests
{
    [Fact]
    public void Five_million_distinct_keys_keep_the_store_at_or_under_its_cap()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 100_000 }, time);
        var limit = Limit.Gcra(Rate.Parse("10/min"));
        var checks = new RateLimitCheck[1];
        var outcomes = new StoreOutcome[1];
        for (var i = 0; i < 5_000_000; i++)
        {
            checks[0] = new RateLimitCheck(limit, new StoreKey((UInt128)i, (UInt128)i), 1, false);
            store.Decide(checks, outcomes);
            Assert.True(outcomes[0].Committed);
        }

        Assert.True(store.Count <= 100_000, $"The store holds {store.Count} keys, over its cap of 100,000.");
        Assert.True(store.Count >= 90_000, $"The store holds only {store.Count} keys: it evicts far more than it must.");
    }

    [Fact]
    public void A_full_store_evicts_expired_keys_before_live_ones()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 64, Shards = 1 }, time);
        var shortLimit = Limit.FixedWindow(Rate.Parse("5/s"));
        var longLimit = Limit.FixedWindow(Rate.Parse("5/h"));

        // 10 long-lived keys spend 3 of 5, then 54 short-lived keys fill the store.
        for (var i = 0; i < 10; i++)
        {
            DecideOne(store, longLimit, Key(i, 0), cost: 3);
        }

        for (var i = 10; i < 64; i++)
        {
            DecideOne(store, shortLimit, Key(i, 0));
        }

        Assert.Equal(64, store.Count);
        time.Advance(TimeSpan.FromSeconds(2));

        // 50 newcomers must take the slots of expired keys, not of the 10 live ones.
        for (var i = 100; i < 150; i++)
        {
            DecideOne(store, shortLimit, Key(i, 0));
        }

        Assert.True(store.Count <= 64);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(2, DecideOne(store, longLimit, Key(i, 0), cost: 0).Outcome.Remaining);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void A_locked_out_key_left_alone_survives_a_flood_of_new_keys(int touches)
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 10_000, Shards = 1 }, time);
        var login = Limit.FixedWindow(Rate.Parse("5/15min"));
        var alice = StoreKey.Create("login", "alice");
        for (var i = 0; i < 5; i++)
        {
            Assert.True(DecideOne(store, login, alice).Committed);
        }

        Assert.False(DecideOne(store, login, alice).Outcome.IsAllowed);

        // 40,000 made-up usernames at 1,000 a second, each tried once or twice: four times the store, and never alice.
        for (var i = 0; i < 40_000; i++)
        {
            var bogus = StoreKey.Create("login", "bogus" + i);
            for (var t = 0; t < touches; t++)
            {
                DecideOne(store, login, bogus);
            }

            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.True(store.Count <= 10_000);
        var after = DecideOne(store, login, alice);
        Assert.False(after.Outcome.IsAllowed);
        Assert.Equal(0, after.Outcome.Remaining);
    }

    [Fact]
    public void Only_what_a_key_holds_marks_it_exhausted_not_what_a_probe_or_an_uncommitted_group_would_have_left()
    {
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 1000, Shards = 1 }, new FakeTimeProvider(Start));
        var four = Limit.FixedWindow(Rate.Parse("4/h"));
        var one = Limit.FixedWindow(Rate.Parse("1/h"));
        var a = Key(1, 1);
        Assert.True(DecideOne(store, four, a).Committed);
        Assert.Equal(0, store.ExhaustedKeys());

        // A probe of 3 would leave a nothing, but it charges nothing.
        var probe = new StoreOutcome[1];
        store.Decide([new RateLimitCheck(four, a, 3, false) { IsProbe = true }], probe);
        Assert.True(probe[0].Outcome.IsAllowed);
        Assert.Equal(0, store.ExhaustedKeys());

        // b spends its one request: exhausted, truly.
        var b = Key(1, 2);
        Assert.True(DecideOne(store, one, b).Committed);
        Assert.Equal(1, store.ExhaustedKeys());

        // One identity's group: a's check alone would leave it nothing, but b is denied, so the group commits nothing.
        var group = new StoreOutcome[2];
        store.Decide([new RateLimitCheck(four, a, 3, false), new RateLimitCheck(one, b, 1, false)], group);
        Assert.False(group[1].Outcome.IsAllowed);
        Assert.Equal(1, store.ExhaustedKeys());

        // Spent for real, a is exhausted too.
        Assert.True(DecideOne(store, four, a, cost: 3).Committed);
        Assert.Equal(2, store.ExhaustedKeys());
    }

    [Fact]
    public void A_store_full_of_exhausted_keys_still_keeps_new_ones()
    {
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 1000, Shards = 1 }, new FakeTimeProvider(Start));
        var hourly = Limit.FixedWindow(Rate.Parse("1/h"));

        // Every key is exhausted by its first request: past three quarters of the shard they are evicted as any key is,
        // so the store stays bounded and a new key is still counted.
        for (var i = 0; i < 5000; i++)
        {
            Assert.True(DecideOne(store, hourly, Key(i, 1)).Committed);
        }

        Assert.Equal(1000, store.Count);
        Assert.True(DecideOne(store, hourly, Key(9999, 1)).Committed);
        Assert.False(DecideOne(store, hourly, Key(9999, 1)).Outcome.IsAllowed);
    }

    [Fact]
    public void Expired_keys_are_reclaimed_as_new_keys_arrive()
    {
        var time = new FakeTimeProvider(Start);
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 10_000, Shards = 1 }, time);
        var limit = Limit.FixedWindow(Rate.Parse("5/s"));
        for (var i = 0; i < 1000; i++)
        {
            DecideOne(store, limit, Key(i, 0));
        }

        time.Advance(TimeSpan.FromSeconds(5));
        for (var i = 1000; i < 2000; i++)
        {
            DecideOne(store, limit, Key(i, 0));
        }

        // Each insert reclaims up to four expired keys, so the first thousand are gone and nothing live was lost.
        Assert.Equal(1000, store.Count);
    }
}
