using FsCheck.Xunit;
using Floodgate.Stores.Memory;

namespace Floodgate.Tests.Stores;

/// <summary>
/// The leases of one concurrency key, against a reference model that recomputes the summary from a plain list after
/// every operation: whatever the order of expiries, the set reports the same permits in flight, earliest and latest
/// expiry.
/// </summary>
public sealed class LeaseSetTests
{
    private const long Second = 1_000_000;
    private const long T0 = 1_800_000_000L * Second;

    [Fact]
    public void An_empty_set_reports_zeros()
    {
        var set = new LeaseSet();
        AssertSummary(set, 0, 0, 0);
        set.Purge(T0);
        AssertSummary(set, 0, 0, 0);
        Assert.False(set.Remove(1));
    }

    [Fact]
    public void Permits_in_flight_are_weighted_by_each_lease()
    {
        var set = new LeaseSet();
        set.Add(1, T0 + 10, 3);
        set.Add(2, T0 + 20, 5);
        set.Add(3, T0 + 30, 1);
        AssertSummary(set, 9, T0 + 10, T0 + 30);
        Assert.True(set.Remove(2));
        AssertSummary(set, 4, T0 + 10, T0 + 30);
        Assert.True(set.Remove(1));
        AssertSummary(set, 1, T0 + 30, T0 + 30);
    }

    [Fact]
    public void Removing_an_unknown_or_released_lease_changes_nothing()
    {
        var set = new LeaseSet();
        set.Add(10, T0 + 10, 2);
        set.Add(11, T0 + 20, 3);
        Assert.False(set.Remove(12));
        Assert.False(set.Remove(0));
        AssertSummary(set, 5, T0 + 10, T0 + 20);
        Assert.True(set.Remove(10));
        Assert.False(set.Remove(10));
        AssertSummary(set, 3, T0 + 20, T0 + 20);

        // A purged lease is gone too: releasing it later is a no-op.
        set.Purge(T0 + 20);
        Assert.False(set.Remove(11));
        AssertSummary(set, 0, 0, 0);
    }

    [Fact]
    public void A_purge_removes_every_lease_expired_by_then_and_no_other()
    {
        var set = new LeaseSet();
        for (var i = 1; i <= 1000; i++)
        {
            set.Add(i, T0 + i, i % 3 == 0 ? 2 : 1);
        }

        // Expiring exactly at now counts as expired.
        set.Purge(T0 + 600);
        var left = Enumerable.Range(601, 400).Sum(i => i % 3 == 0 ? 2L : 1L);
        AssertSummary(set, left, T0 + 601, T0 + 1000);
        Assert.False(set.Remove(600));
        Assert.True(set.Remove(601));
        AssertSummary(set, left - 1, T0 + 602, T0 + 1000);

        // A purge at an earlier time (the clock stepped back) removes nothing more.
        set.Purge(T0);
        AssertSummary(set, left - 1, T0 + 602, T0 + 1000);
        set.Purge(T0 + 1000);
        AssertSummary(set, 0, 0, 0);
    }

    [Fact]
    public void Out_of_order_expiries_keep_the_earliest_and_latest_exact()
    {
        var set = new LeaseSet();

        // A longer timeout first, then shorter ones (a reloaded limit), then one in between.
        set.Add(1, T0 + 50, 1);
        set.Add(2, T0 + 10, 1);
        set.Add(3, T0 + 30, 1);
        set.Add(4, T0 + 40, 1);
        set.Add(5, T0 + 20, 1);
        AssertSummary(set, 5, T0 + 10, T0 + 50);

        // Releasing the latest lease brings the latest expiry back to the next one, not to the last added.
        Assert.True(set.Remove(1));
        AssertSummary(set, 4, T0 + 10, T0 + 40);
        Assert.True(set.Remove(2));
        AssertSummary(set, 3, T0 + 20, T0 + 40);
        set.Purge(T0 + 25);
        AssertSummary(set, 2, T0 + 30, T0 + 40);
        Assert.True(set.Remove(4));
        AssertSummary(set, 1, T0 + 30, T0 + 30);
    }

    [Fact]
    public void Leases_sharing_an_expiry_are_each_counted_until_each_is_removed()
    {
        var set = new LeaseSet();
        set.Add(1, T0 + 10, 1);
        set.Add(2, T0 + 10, 1);
        set.Add(3, T0 + 5, 1);
        Assert.True(set.Remove(1));
        AssertSummary(set, 2, T0 + 5, T0 + 10);
        Assert.True(set.Remove(3));
        AssertSummary(set, 1, T0 + 10, T0 + 10);
    }

    [Fact]
    public void A_cleared_set_is_empty_and_can_be_reused_with_the_same_ids()
    {
        var set = new LeaseSet();
        for (var i = 1; i <= 100; i++)
        {
            set.Add(i, T0 + (i * 7 % 13), 1);
        }

        set.Clear();
        AssertSummary(set, 0, 0, 0);
        Assert.False(set.Remove(5));

        // A set goes back to its shard's pool when its key is removed; the next key may reuse it with any ids.
        set.Add(5, T0 + 3, 2);
        set.Add(6, T0 + 1, 1);
        AssertSummary(set, 3, T0 + 1, T0 + 3);
        Assert.True(set.Remove(5));
        AssertSummary(set, 1, T0 + 1, T0 + 1);
    }

    [Fact]
    public void Expiries_before_1970_keep_the_latest_expiry_at_zero()
    {
        // A clock before 1970 gives negative expiries: the earliest is the least, the latest never goes below 0.
        var set = new LeaseSet();
        set.Add(1, -30, 1);
        set.Add(2, -10, 1);
        AssertSummary(set, 2, -30, 0);
        set.Add(3, 5, 1);
        AssertSummary(set, 3, -30, 5);
        set.Purge(-20);
        AssertSummary(set, 2, -10, 5);
    }

    [Fact]
    public void Thousands_of_random_operations_on_large_sets_match_the_reference_model()
    {
        // Large sets, so the structure is many levels deep; every kind of expiry order.
        Assert.True(Run(seed: 20240601, operations: 30_000, targetSize: 3000, disorderPercent: 0) > 2000);
        Assert.True(Run(seed: 7, operations: 30_000, targetSize: 3000, disorderPercent: 10) > 2000);
        Assert.True(Run(seed: 8, operations: 30_000, targetSize: 1000, disorderPercent: 100) > 500);
    }

    [Property(MaxTest = 200)]
    public void Random_operations_match_the_reference_model(int seed, byte sizeSeed, byte disorderSeed) =>
        _ = Run(seed, operations: 2000, targetSize: 1 + (sizeSeed % 64), disorderPercent: disorderSeed % 101);

    private static void AssertSummary(LeaseSet set, long inFlight, long earliest, long latest)
    {
        Assert.Equal(inFlight, set.InFlight);
        Assert.Equal(earliest, set.EarliestExpiry);
        Assert.Equal(latest, set.LatestExpiry);
    }

    /// <summary>
    /// Random adds, releases (of held, released and never issued ids), purges (a few expired, many at once, or a clock
    /// stepped back) and a rare clear, compared with <see cref="Model"/> after each one. Expiries are the
    /// clock plus a fixed timeout, except <paramref name="disorderPercent"/> of them, which take a random timeout.
    /// Returns the most leases held at once.
    /// </summary>
    private static int Run(int seed, int operations, int targetSize, int disorderPercent)
    {
        var random = new Random(seed);
        var set = new LeaseSet();
        var model = new Model();
        var now = T0;
        long nextId = 1_000;
        var largest = 0;
        for (var op = 0; op < operations; op++)
        {
            now += random.Next(0, 1_000);
            var roll = random.Next(100);
            if (roll < (model.Count < targetSize ? 55 : 35))
            {
                var timeout = random.Next(100) < disorderPercent ? random.NextInt64(1_000, 20 * Second) : 10 * Second;
                var permits = random.Next(10) == 0 ? random.Next(1, 100) : 1;
                set.Add(nextId, now + timeout, permits);
                model.Add(nextId, now + timeout, permits);
                nextId++;
            }
            else if (roll < 80)
            {
                // Mostly a held lease; else one released, purged or never issued.
                var id = model.Count > 0 && random.Next(4) != 0 ? model.RandomId(random) : random.NextInt64(990, nextId + 10);
                Assert.Equal(model.Remove(id), set.Remove(id));
            }
            else if (roll < 99)
            {
                // Usually now; sometimes far ahead (many expire at once) or behind (the clock stepped back).
                var at = random.Next(20) switch
                {
                    0 => now + random.NextInt64(2 * Second),
                    1 => now - random.NextInt64(5 * Second),
                    _ => now,
                };
                set.Purge(at);
                model.Purge(at);
            }
            else if (random.Next(100) == 0)
            {
                set.Clear();
                model.Clear();
            }

            Assert.Equal(model.InFlight, set.InFlight);
            Assert.Equal(model.EarliestExpiry, set.EarliestExpiry);
            Assert.Equal(model.LatestExpiry, set.LatestExpiry);
            largest = Math.Max(largest, model.Count);
        }

        return largest;
    }

    /// <summary>The obvious implementation: a list, summarized from scratch on every read.</summary>
    private sealed class Model
    {
        private readonly List<(long Id, long Expiry, long Permits)> _leases = [];

        public int Count => _leases.Count;

        public long InFlight => _leases.Sum(l => l.Permits);

        public long EarliestExpiry => _leases.Count == 0 ? 0 : _leases.Min(l => l.Expiry);

        public long LatestExpiry => _leases.Count == 0 ? 0 : Math.Max(0, _leases.Max(l => l.Expiry));

        public void Add(long id, long expiry, long permits) => _leases.Add((id, expiry, permits));

        public bool Remove(long id) => _leases.RemoveAll(l => l.Id == id) > 0;

        public void Purge(long now) => _leases.RemoveAll(l => l.Expiry <= now);

        public void Clear() => _leases.Clear();

        public long RandomId(Random random) => _leases[random.Next(_leases.Count)].Id;
    }
}
