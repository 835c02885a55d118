using Floodgate.Algorithms;
using Floodgate.Costs;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Floodgate.Stores.Memory;
using FsCheck.Xunit;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Shaping;

/// <summary>The sliding log: exact decisions on a fake clock, its bound as a property, and its memory store.</summary>
public sealed class SlidingLogTests
{
    private const long Second = 1_000_000;
    private const long Ms = 1_000;
    private const long T0 = 1_800_000_000L * Second;

    private static readonly StoreKey Alice = StoreKey.Create("log", "alice");

    private static StoreOutcome Decide(MemoryStore store, Limit limit, long now, long cost = 1, StoreKey? key = null, bool probe = false)
    {
        var outcomes = new StoreOutcome[1];
        store.Decide([new RateLimitCheck(limit, key ?? Alice, cost, false) { IsProbe = probe }], outcomes, now);
        return outcomes[0];
    }

    [Fact]
    public void Admits_the_amount_in_any_window_and_tells_when_the_oldest_entry_leaves()
    {
        var limit = Limit.SlidingLog(Rate.Parse("3/s"));
        var store = new MemoryStore();
        Assert.Equal(new LimitOutcome(true, 2, Second, 0), Decide(store, limit, T0).Outcome);
        Assert.Equal(new LimitOutcome(true, 1, Second, 0), Decide(store, limit, T0 + (200 * Ms)).Outcome);
        Assert.Equal(new LimitOutcome(true, 0, Second, 0), Decide(store, limit, T0 + (400 * Ms)).Outcome);

        // Full: the entry at T0 leaves the window at T0 + 1 s; the reset is when the newest (T0 + 400 ms) leaves.
        var denied = Decide(store, limit, T0 + (500 * Ms));
        Assert.Equal(new LimitOutcome(false, 0, 900 * Ms, 500 * Ms), denied.Outcome);
        Assert.False(denied.Committed);
        Assert.False(Decide(store, limit, T0 + Second - 1).Outcome.IsAllowed);
        Assert.True(Decide(store, limit, T0 + Second).Outcome.IsAllowed);

        // Exact, unlike a window counter: the entries at 200 and 400 ms still count at 1.1 s.
        Assert.Equal(100 * Ms, Decide(store, limit, T0 + (1100 * Ms)).Outcome.RetryAfterMicroseconds);
    }

    [Fact]
    public void A_cost_waits_for_as_many_entries_to_leave_and_a_cost_above_the_amount_never_fits()
    {
        var limit = Limit.SlidingLog(Rate.Parse("4/s"));
        var store = new MemoryStore();
        Decide(store, limit, T0);
        Decide(store, limit, T0 + (100 * Ms));
        Decide(store, limit, T0 + (300 * Ms), cost: 2);

        // Three units must make room: the entries at 0, 100 and 300 ms; the third leaves at 1.3 s.
        var denied = Decide(store, limit, T0 + (500 * Ms), cost: 3);
        Assert.Equal(800 * Ms, denied.Outcome.RetryAfterMicroseconds);
        Assert.Equal(LimitOutcome.Never, Decide(store, limit, T0 + (500 * Ms), cost: 5).Outcome.RetryAfterMicroseconds);

        // A probe is decided with its cost and writes nothing.
        Assert.True(Decide(store, limit, T0 + (1100 * Ms), cost: 1, probe: true).Outcome.IsAllowed);
        Assert.Equal(2, Decide(store, limit, T0 + (1100 * Ms), cost: 0).Outcome.Remaining);
    }

    [Fact]
    public void A_clock_stepped_back_gives_nothing_back()
    {
        var limit = Limit.SlidingLog(Rate.Parse("2/s"));
        var store = new MemoryStore();
        Decide(store, limit, T0 + (10 * Second));
        Decide(store, limit, T0 + (10 * Second));
        var earlier = Decide(store, limit, T0);
        Assert.False(earlier.Outcome.IsAllowed);
        Assert.Equal(Second, earlier.Outcome.RetryAfterMicroseconds);
    }

    [Fact]
    public void A_denied_check_that_is_always_charged_fills_the_log_but_never_past_the_amount()
    {
        var limit = Limit.SlidingLog(Rate.Parse("3/s"));
        var store = new MemoryStore();
        var outcomes = new StoreOutcome[1];
        Decide(store, limit, T0);
        store.Decide([new RateLimitCheck(limit, Alice, 5, false) { IsAlwaysCharged = true }], outcomes, T0 + (100 * Ms));
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.True(outcomes[0].Committed);

        // Two entries at 100 ms (the room left), not five: the log is full until T0 + 1 s, then one unit frees.
        Assert.Equal(0, Decide(store, limit, T0 + (200 * Ms), cost: 0).Outcome.Remaining);
        Assert.Equal(1, Decide(store, limit, T0 + Second, cost: 0).Outcome.Remaining);
        Assert.Equal(3, Decide(store, limit, T0 + (1100 * Ms), cost: 0).Outcome.Remaining);
    }

    [Fact]
    public void An_identity_denied_by_another_check_appends_nothing()
    {
        var log = Limit.SlidingLog(Rate.Parse("5/s"));
        var tight = Limit.FixedWindow(Rate.Parse("1/s"));
        var store = new MemoryStore();
        var outcomes = new StoreOutcome[2];
        RateLimitCheck[] group = [new(log, Alice, 1, false), new(tight, StoreKey.Create("tight", "alice"), 1, false)];
        store.Decide(group, outcomes, T0);
        store.Decide(group, outcomes, T0 + 1);
        Assert.True(outcomes[0].Outcome.IsAllowed);
        Assert.False(outcomes[0].Committed);
        Assert.False(outcomes[1].Outcome.IsAllowed);
        Assert.Equal(4, Decide(store, log, T0 + 2, cost: 0).Outcome.Remaining);
    }

    [Property(MaxTest = 200)]
    public bool Admits_exactly_what_fits_in_the_trailing_window_and_never_more_than_the_amount_in_any_window(byte amountSeed, byte periodSeed, int seed)
    {
        var amount = 1 + (amountSeed % 25);
        var period = (1 + (periodSeed % 5)) * Second;
        var limit = Limit.SlidingLog(new Rate(amount, (int)(period / Second), RateUnit.Second));
        var store = new MemoryStore();
        var random = new Random(seed);
        var admitted = new List<(long Time, long Cost)>();
        var now = T0;
        for (var i = 0; i < 300; i++)
        {
            now += random.Next(3) == 0 ? 0 : random.NextInt64(3 * period / amount);
            var cost = 1 + random.Next(3);
            var trailing = admitted.Where(a => a.Time > now - period).Sum(a => a.Cost);
            var outcome = Decide(store, limit, now, cost).Outcome;
            if (outcome.IsAllowed != (trailing + cost <= amount))
            {
                return false;
            }

            if (outcome.IsAllowed)
            {
                admitted.Add((now, cost));
            }
            else if (outcome.RetryAfterMicroseconds != LimitOutcome.Never
                && admitted.Where(a => a.Time > now + outcome.RetryAfterMicroseconds - period).Sum(a => a.Cost) + cost > amount)
            {
                // At the retry-after the cost must fit, and one microsecond earlier it must not.
                return false;
            }
            else if (outcome.RetryAfterMicroseconds != LimitOutcome.Never
                && admitted.Where(a => a.Time > now + outcome.RetryAfterMicroseconds - 1 - period).Sum(a => a.Cost) + cost <= amount)
            {
                return false;
            }
        }

        // Any window [s, s + period) holds at most the amount.
        return admitted.All(start => admitted.Where(a => a.Time >= start.Time && a.Time < start.Time + period).Sum(a => a.Cost) <= amount);
    }

    [Fact]
    public void The_ring_keeps_at_most_the_amount_and_drops_what_left_the_window()
    {
        var ring = new SlidingLogRing();
        for (var i = 0; i < 1000; i++)
        {
            ring.Append(T0 + (i * Ms), 1, T0 + (i * Ms) - (10 * Ms));
            Assert.True(ring.Count <= 10);
        }

        Assert.Equal(10, ring.Count);
        Assert.Equal(T0 + (999 * Ms), ring.Newest);
        Assert.Equal(T0 + (990 * Ms), ring.At(0));
        Assert.Equal(5, ring.CountAfter(T0 + (994 * Ms)));
        Assert.Equal(0, ring.CountAfter(T0 + (999 * Ms)));
        Assert.Equal(10, ring.CountAfter(0));
    }

    [Fact]
    public void A_sliding_log_decision_on_an_existing_key_allocates_nothing()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(T0 / Ms));
        var store = new MemoryStore(timeProvider: clock);
        RateLimitCheck[] single = [new(Limit.SlidingLog(Rate.Parse("100/s")), Alice, 1, false)];
        RateLimitCheck[] group =
        [
            new(Limit.SlidingLog(Rate.Parse("1000/min")), StoreKey.Create("a", "bob"), 1, false),
            new(Limit.LeakyBucket(Rate.Parse("1000/s")), StoreKey.Create("b", "bob"), 1, false),
        ];
        var outcomes = new StoreOutcome[2];
        for (var i = 0; i < 2_000; i++)
        {
            store.Decide(single, outcomes);
            store.Decide(group, outcomes);
            clock.Advance(TimeSpan.FromMilliseconds(10));
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            store.Decide(single, outcomes);
            store.Decide(group, outcomes);
            clock.Advance(TimeSpan.FromMilliseconds(10));
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

        // One request every 10 ms is exactly 100/s: the ring turns at its full size.
        store.Decide(single, outcomes);
        Assert.True(outcomes[0].Committed);
    }

    [Fact]
    public void Evicted_keys_give_their_logs_back_for_the_next_keys()
    {
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 64 });
        var limit = Limit.SlidingLog(Rate.Parse("50/h"));
        var rounds = Enumerable.Range(0, 3)
            .Select(r => Enumerable.Range(0, 256).Select(k => new[] { new RateLimitCheck(limit, StoreKey.Create("evict", $"{r}-{k}"), 1, false) }).ToArray())
            .ToArray();
        var outcomes = new StoreOutcome[1];
        void Round(RateLimitCheck[][] keys)
        {
            for (var k = 0; k < keys.Length; k++)
            {
                for (var i = 0; i < 8; i++)
                {
                    store.Decide(keys[k], outcomes, T0 + k);
                }
            }
        }

        Round(rounds[0]);
        Round(rounds[1]);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Round(rounds[2]);

        // 256 new keys, each evicting one: every log is one given back, none made.
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(store.Count <= 64);
        Assert.True(outcomes[0].Committed);
    }

    [Fact]
    public void Amounts_above_the_maximum_are_refused_with_the_reason()
    {
        Assert.Equal(1000, Limit.SlidingLog(Rate.Parse("1000/min")).Amount);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Limit.SlidingLog(Rate.Parse("1001/min")));
        Assert.Contains("beyond 1000, the most a sliding_log keeps", e.Message, StringComparison.Ordinal);
        Assert.Contains("sliding_window", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => Limit.SlidingLog(Rate.Parse("10/s")).WithLeasedSlice(2));
        Assert.Equal("sliding_log 10/s", Limit.SlidingLog(Rate.Parse("10/s")).ToString());
        Assert.Equal("sliding_log 20/s", Limit.SlidingLog(Rate.Parse("10/s")).WithRate(Rate.Parse("20/s")).ToString());
        Assert.Equal("sliding_log 5/s", ReplicaShare.Of(Limit.SlidingLog(Rate.Parse("10/s")), 2).ToString());
    }

    [Fact]
    public void A_sliding_log_is_not_settled_nor_given_a_cost_settled_from_usage()
    {
        var limit = Limit.SlidingLog(Rate.Parse("10/s"));
        Assert.Throws<ArgumentException>(() => LimitMath.Settle(limit, default, T0, 1));
        Assert.Throws<ArgumentException>(() => LimitMath.Decide(limit, default, T0, 1, out _));
        Assert.Throws<ArgumentException>(() => new MemoryStore().SettleAsync(new RateLimitCheck(limit, Alice, 1, false), 2).AsTask().GetAwaiter().GetResult());
        var e = Assert.Throws<ArgumentException>(() => new RateLimitRule("tokens", RateLimitTier.User, limit) { Costs = new RuleCost() });
        Assert.Contains("sliding_log", e.Message, StringComparison.Ordinal);
    }
}
