using System.Diagnostics;
using System.Globalization;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>Three redis-server masters joined into a cluster by <c>redis-cli --cluster create</c>.</summary>
public sealed class ClusterFixture : IDisposable
{
    public ClusterFixture()
        : this([])
    {
    }

    /// <summary>Starts the cluster with <paramref name="extra"/> as more options of every node.</summary>
    internal ClusterFixture(params string[] extra)
    {
        var nodes = new List<RedisServer>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var port = RedisServer.FreePort(cluster: true);
                nodes.Add(RedisServer.Start(port, ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "3000", .. extra]));
            }

            Nodes = nodes;
            var create = new List<string> { "--cluster", "create" };
            create.AddRange(nodes.Select(n => n.Configuration));
            create.AddRange(["--cluster-replicas", "0", "--cluster-yes"]);
            var output = nodes[0].Cli([.. create]);
            if (!output.Contains("All 16384 slots covered", StringComparison.Ordinal))
            {
                throw new InvalidOperationException("redis-cli --cluster create failed: " + output);
            }

            // Bounded polling until every node sees the cluster as ok.
            var deadline = Stopwatch.StartNew();
            while (!nodes.All(n => n.Cli("CLUSTER", "INFO").Contains("cluster_state:ok", StringComparison.Ordinal)))
            {
                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                {
                    throw new TimeoutException("The cluster did not become ok within 30 s.");
                }

                Thread.Sleep(50);
            }
        }
        catch
        {
            foreach (var node in nodes)
            {
                node.Dispose();
            }

            throw;
        }
    }

    public IReadOnlyList<RedisServer> Nodes { get; } = [];

    public string Configuration => string.Join(',', Nodes.Select(n => n.Configuration));

    public void Dispose()
    {
        foreach (var node in Nodes)
        {
            node.Dispose();
        }
    }
}

public sealed class ClusterTests(ClusterFixture cluster) : IClassFixture<ClusterFixture>
{
    [Fact]
    public async Task Identities_spread_over_every_master_and_each_identity_stays_atomic()
    {
        var prefix = "cl" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, prefix: prefix);
        var perUser = Limit.Gcra(new Rate(100, 1, RateUnit.Minute));
        var orders = Limit.Quota(new Rate(1, 1, RateUnit.Hour), null);
        var batch = new List<RateLimitCheck>();
        for (var i = 0; i < 60; i++)
        {
            batch.Add(new RateLimitCheck(perUser, StoreKey.Create("per-user", "user" + i), 1, false));
            batch.Add(new RateLimitCheck(orders, StoreKey.Create("orders", "user" + i), 1, false));
        }

        var first = await store.DecideAsync([.. batch]);
        Assert.All(first, o => Assert.True(o.Committed && !o.IsStoreFailure));
        // One EVALSHA per hash slot (these 60 identities have 60); the first on each master also gets NOSCRIPT and sends
        // the script itself.
        Assert.InRange(store.RoundTrips, 60, 120);
        var trips = store.RoundTrips;

        // Orders are spent for everyone now: every identity is denied whole, the per-user limit untouched.
        var second = await store.DecideAsync([.. batch]);
        Assert.Equal(trips + 60, store.RoundTrips);
        for (var i = 0; i < second.Length; i += 2)
        {
            Assert.False(second[i + 1].Outcome.IsAllowed);
            Assert.False(second[i].Committed);
        }

        var probe = await store.DecideOneAsync(batch[0] with { Cost = 0 });
        Assert.Equal(99, probe.Outcome.Remaining);

        foreach (var node in cluster.Nodes)
        {
            var keys = node.Cli("--scan", "--pattern", prefix + ":*").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(keys.Length > 10, $"node {node.Port} holds only {keys.Length} keys");
        }
    }

    [Fact]
    public async Task Stages_in_different_slots_are_decided_one_after_the_other_and_stop_at_a_rejection()
    {
        var prefix = "st" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, o => o.OverLimitCache = false, prefix: prefix);
        var edge = new RateLimitCheck(Limit.FixedWindow(new Rate(2, 1, RateUnit.Hour)), StoreKey.Create("edge", "192.0.2.1"), 1, false);
        var user = new RateLimitCheck(Limit.FixedWindow(new Rate(10, 1, RateUnit.Hour)), StoreKey.Create("user", "alice"), 1, false);
        var global = new RateLimitCheck(Limit.FixedWindow(new Rate(10, 1, RateUnit.Hour)), StoreKey.Create("global", "all"), 1, false);
        var slots = new[] { edge, user, global }.Select(c => store.Connection.HashSlot(RedisKeys.For(prefix, c.Key, c.Limit.Algorithm))).Distinct().Count();
        Assert.Equal(3, slots);

        RateLimitCheck[] checks = [edge, user, global];
        int[] ends = [1, 2, 3];
        for (var i = 0; i < 2; i++)
        {
            var outcomes = new StoreOutcome[3];
            Assert.Equal(3, await store.DecideStagesAsync(checks, ends, outcomes));
            Assert.All(outcomes, o => Assert.True(o.Committed && !o.IsStoreFailure));
        }

        var trips = store.RoundTrips;
        var rejected = new StoreOutcome[3];
        Assert.Equal(1, await store.DecideStagesAsync(checks, ends, rejected));
        Assert.False(rejected[0].Outcome.IsAllowed);
        Assert.Equal(trips + 1, store.RoundTrips);
        Assert.Equal(8, (await store.DecideOneAsync(user with { Cost = 0 })).Outcome.Remaining);
        Assert.Equal(8, (await store.DecideOneAsync(global with { Cost = 0 })).Outcome.Remaining);
    }

    [Fact]
    public async Task Stages_of_one_identity_share_a_slot_and_one_round_trip()
    {
        var prefix = "so" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, o => o.OverLimitCache = false, prefix: prefix);
        var perMinute = Limit.Gcra(new Rate(60, 1, RateUnit.Minute));
        RateLimitCheck[] checks = [new(perMinute, StoreKey.Create("edge", "alice"), 1, false), new(perMinute, StoreKey.Create("user", "alice"), 1, false)];
        Assert.Equal(2, await store.DecideStagesAsync(checks, new[] { 1, 2 }, new StoreOutcome[2]));
        var trips = store.RoundTrips;
        var outcomes = new StoreOutcome[2];
        Assert.Equal(2, await store.DecideStagesAsync(checks, new[] { 1, 2 }, outcomes));
        Assert.All(outcomes, o => Assert.True(o.Committed));
        Assert.Equal(trips + 1, store.RoundTrips);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_decision_caught_in_a_half_migrated_slot_is_sent_again_until_the_migration_completes(bool newOwnerLacksTheScript)
    {
        // One identity's two keys share a slot; with one moved and the other not yet, Redis answers the call TRYAGAIN.
        // The identity is the test's own, so no other test's keys share the slot.
        var prefix = "ta" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, o => o.Timeout = TimeSpan.FromSeconds(5), prefix: prefix);
        var limit = Limit.Quota(new Rate(10, 1, RateUnit.Day), null);
        var checks = new[]
        {
            new RateLimitCheck(limit, StoreKey.Create("first", prefix), 1, false),
            new RateLimitCheck(limit, StoreKey.Create("second", prefix), 1, false),
        };
        Assert.All(await store.DecideAsync(checks), o => Assert.True(o.Committed));

        var keys = checks.Select(c => System.Text.Encoding.ASCII.GetString((byte[])RedisKeys.For(prefix, c.Key, limit.Algorithm)!)).ToArray();
        var slot = cluster.Nodes[0].Cli("CLUSTER", "KEYSLOT", keys[0]);
        Assert.Equal(slot, cluster.Nodes[0].Cli("CLUSTER", "KEYSLOT", keys[1]));
        var source = cluster.Nodes.Single(n => n.Cli("EXISTS", keys[0], keys[1]) == "2");
        var target = cluster.Nodes.First(n => n != source);
        var sourceId = source.Cli("CLUSTER", "MYID");
        var targetId = target.Cli("CLUSTER", "MYID");
        var port = target.Port.ToString(CultureInfo.InvariantCulture);
        if (newOwnerLacksTheScript)
        {
            // As a node added to scale out, or restarted: the resent call, redirected there, is answered NOSCRIPT.
            Assert.Equal("OK", target.Cli("SCRIPT", "FLUSH"));
        }

        Assert.Equal("OK", target.Cli("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId));
        Assert.Equal("OK", source.Cli("CLUSTER", "SETSLOT", slot, "MIGRATING", targetId));
        Assert.Equal("OK", source.Cli("MIGRATE", "127.0.0.1", port, keys[0], "0", "5000"));

        // The migration completes a moment after the decision is sent, while the store is pausing between retries.
        var trips = store.RoundTrips;
        var decision = store.DecideAsync(checks);
        await Task.Delay(300);
        Assert.False(decision.IsCompleted, "the decision did not wait for the migration");
        foreach (var moving in source.Cli("CLUSTER", "GETKEYSINSLOT", slot, "100").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.Equal("OK", source.Cli("MIGRATE", "127.0.0.1", port, moving, "0", "5000"));
        }

        // The new owner first, as the cluster specification asks: told first, the old owner would redirect the retried
        // call to a node that, still importing, redirects it back.
        foreach (var node in cluster.Nodes.OrderBy(n => n == target ? 0 : n == source ? 1 : 2))
        {
            Assert.Equal("OK", node.Cli("CLUSTER", "SETSLOT", slot, "NODE", targetId));
        }

        var outcomes = await decision;
        Assert.All(outcomes, o => Assert.False(o.IsStoreFailure));
        Assert.All(outcomes, o => Assert.True(o.Committed));
        Assert.All(outcomes, o => Assert.Equal(8, o.Outcome.Remaining));
        Assert.True(store.RoundTrips > trips + 2, "the call was not sent again");
        Assert.Equal("2", target.Cli("EXISTS", keys[0], keys[1]));
        Assert.Equal(0, store.Failures);
    }

    [Fact]
    public async Task Decisions_stay_correct_through_a_MOVED_after_resharding_a_slot()
    {
        var prefix = "mv" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(cluster.Configuration, prefix: prefix);
        var limit = Limit.Quota(new Rate(10, 1, RateUnit.Day), null);
        var check = new RateLimitCheck(limit, StoreKey.Create("mover", "alice"), 1, false);
        for (var i = 0; i < 3; i++)
        {
            Assert.True((await store.DecideOneAsync(check)).Committed);
        }

        var key = System.Text.Encoding.ASCII.GetString((byte[])RedisKeys.For(prefix, check.Key, limit.Algorithm)!);
        var slot = cluster.Nodes[0].Cli("CLUSTER", "KEYSLOT", key);
        var source = cluster.Nodes.Single(n => n.Cli("CLUSTER", "COUNTKEYSINSLOT", slot) == "1");
        var target = cluster.Nodes.First(n => n != source);
        var sourceId = source.Cli("CLUSTER", "MYID");
        var targetId = target.Cli("CLUSTER", "MYID");

        // Reshard the slot by hand, as redis-cli --cluster reshard does: importing, migrating, move the keys, assign.
        Assert.Equal("OK", target.Cli("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId));
        Assert.Equal("OK", source.Cli("CLUSTER", "SETSLOT", slot, "MIGRATING", targetId));
        foreach (var moving in source.Cli("CLUSTER", "GETKEYSINSLOT", slot, "100").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.Equal("OK", source.Cli("MIGRATE", "127.0.0.1", target.Port.ToString(CultureInfo.InvariantCulture), moving, "0", "5000"));
        }

        foreach (var node in cluster.Nodes)
        {
            Assert.Equal("OK", node.Cli("CLUSTER", "SETSLOT", slot, "NODE", targetId));
        }

        // The store still routes to the old owner: it gets MOVED, follows it, and the new owner has no script yet.
        for (var i = 3; i < 10; i++)
        {
            var outcome = await store.DecideOneAsync(check);
            Assert.False(outcome.IsStoreFailure, $"decision {i} failed");
            Assert.True(outcome.Committed);
            Assert.Equal(10 - i - 1, outcome.Outcome.Remaining);
        }

        Assert.False((await store.DecideOneAsync(check)).Outcome.IsAllowed);
        Assert.Equal("1", target.Cli("CLUSTER", "COUNTKEYSINSLOT", slot));
        Assert.Equal("0", source.Cli("CLUSTER", "COUNTKEYSINSLOT", slot));
        Assert.Equal(0, store.Failures);
    }
}
