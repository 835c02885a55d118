using System.Text;
using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

public abstract class StoreTests(IServerFixture fixture)
{
    private static readonly DateTimeOffset Start = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task An_identity_is_decided_all_or_nothing()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var perUser = Limit.Gcra(new Rate(100, 1, RateUnit.Minute));
        var orders = Limit.FixedWindow(new Rate(2, 1, RateUnit.Hour));
        var shadow = Limit.FixedWindow(new Rate(1, 1, RateUnit.Hour));
        var user = new RateLimitCheck(perUser, StoreKey.Create("per-user", "alice"), 1, false);
        var order = new RateLimitCheck(orders, StoreKey.Create("orders", "alice"), 1, false);
        var observe = new RateLimitCheck(shadow, StoreKey.Create("observe", "alice"), 1, true);

        Assert.All(await store.DecideAsync(user, order, observe), o => Assert.True(o.Committed));

        // The shadow check is now over its limit: it is denied but does not stop the others.
        var second = await store.DecideAsync(user, order, observe);
        Assert.True(second[0].Committed && second[1].Committed);
        Assert.False(second[2].Outcome.IsAllowed);
        Assert.Equal(98, second[0].Outcome.Remaining);

        // The orders limit is spent: the whole identity is denied and the per-user limit consumes nothing.
        var third = await store.DecideAsync(user, order);
        Assert.False(third[1].Outcome.IsAllowed);
        Assert.True(third[0].Outcome.IsAllowed);
        Assert.False(third[0].Committed);
        var probe = await store.DecideOneAsync(user with { Cost = 0 });
        Assert.Equal(98, probe.Outcome.Remaining);

        // Another identity in the same batch is independent.
        var bob = new RateLimitCheck(perUser, StoreKey.Create("per-user", "bob"), 1, false);
        var mixed = await store.DecideAsync(order, bob);
        Assert.False(mixed[0].Outcome.IsAllowed);
        Assert.True(mixed[1].Committed);
    }

    [Fact]
    public async Task A_batch_of_many_identities_is_one_round_trip_on_a_single_node()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var limit = Limit.Gcra(new Rate(10, 1, RateUnit.Second));
        var checks = Enumerable.Range(0, 50).Select(i => new RateLimitCheck(limit, StoreKey.Create("r", "user" + (i % 25)), 1, false)).ToArray();
        var outcomes = await store.DecideAsync(checks);
        Assert.All(outcomes, o => Assert.True(o.Committed));
        Assert.Equal(1, store.RoundTrips);
    }

    [Fact]
    public async Task A_batch_of_several_identities_is_decided_after_SCRIPT_FLUSH_by_resending_the_script()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var perMinute = Limit.Gcra(new Rate(5, 1, RateUnit.Minute));
        var perHour = Limit.FixedWindow(new Rate(3, 1, RateUnit.Hour));
        var checks = Enumerable.Range(0, 5)
            .SelectMany(i => new[]
            {
                new RateLimitCheck(perMinute, StoreKey.Create("flush-batch-m", "user" + i), 1, false),
                new RateLimitCheck(perHour, StoreKey.Create("flush-batch-h", "user" + i), 1, false),
            })
            .ToArray();
        Assert.All(await store.DecideAsync(checks), o => Assert.True(o.Committed));
        Assert.Equal(1, store.RoundTrips);

        Assert.Equal("OK", fixture.Server.Cli("SCRIPT", "FLUSH"));

        var after = await store.DecideAsync(checks);
        for (var i = 0; i < after.Length; i++)
        {
            Assert.False(after[i].IsStoreFailure);
            Assert.True(after[i].Committed);
            Assert.True(after[i].Outcome.IsAllowed);
            Assert.Equal(i % 2 == 0 ? 3 : 1, after[i].Outcome.Remaining);
        }

        // The batch's one EVALSHA answered NOSCRIPT, then the script itself went; nothing failed.
        Assert.Equal(3, store.RoundTrips);
        Assert.Equal(0, store.Failures);
        Assert.True(store.IsCircuitClosed);
    }

    [Fact]
    public async Task Scripts_are_reloaded_after_SCRIPT_FLUSH()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var check = new RateLimitCheck(Limit.Gcra(new Rate(5, 1, RateUnit.Minute)), StoreKey.Create("flush", "alice"), 1, false);
        Assert.True((await store.DecideOneAsync(check)).Committed);
        var sha = TestStores.ScriptSha;
        Assert.Equal("1", fixture.Server.Cli("SCRIPT", "EXISTS", sha));

        Assert.Equal("OK", fixture.Server.Cli("SCRIPT", "FLUSH"));
        Assert.Equal("0", fixture.Server.Cli("SCRIPT", "EXISTS", sha));

        var after = await store.DecideOneAsync(check);
        Assert.False(after.IsStoreFailure);
        Assert.True(after.Committed);
        Assert.Equal(3, after.Outcome.Remaining);
        Assert.Equal("1", fixture.Server.Cli("SCRIPT", "EXISTS", sha));
        Assert.Equal(0, store.Failures);
    }

    [Fact]
    public async Task Hostile_identities_cannot_break_or_grow_keys_and_every_key_has_a_ttl()
    {
        var prefix = "hostile" + Guid.NewGuid().ToString("N")[..6];
        await using var store = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        var hostile = new[]
        {
            new string('x', 10 * 1024),
            "{alice}",
            "}{:}{",
            "a b\r\nKEYS *\r\n",
            Encoding.Latin1.GetString(Enumerable.Range(0, 256).Select(i => (byte)i).ToArray()),
            "\0\0\0",
            "\uD800", // a lone surrogate
            string.Concat(Enumerable.Repeat("{}", 3000)),
        };
        // Hour-long windows: a window that ends while the test runs would refill a budget or expire a key under it.
        var limits = new[]
        {
            Limit.Gcra(new Rate(2, 1, RateUnit.Hour)),
            Limit.SlidingWindow(new Rate(2, 1, RateUnit.Hour)),
            Limit.FixedWindow(new Rate(2, 1, RateUnit.Hour)),
            Limit.Quota(new Rate(2, 1, RateUnit.Day), QuotaCalendar.Utc),
            Limit.Concurrency(2),
        };
        foreach (var identity in hostile)
        {
            var checks = limits.Select((l, i) => new RateLimitCheck(l, StoreKey.Create("rule" + i, identity, identity), 1, false)).ToArray();
            for (var round = 0; round < 3; round++)
            {
                var outcomes = await store.DecideAsync(checks);
                Assert.All(outcomes, o => Assert.False(o.IsStoreFailure));
                Assert.Equal(round < 2, outcomes.All(o => o.Committed));
            }
        }

        var keys = fixture.Server.Cli("--scan", "--pattern", prefix + ":*").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(hostile.Length * limits.Length, keys.Length);
        foreach (var key in keys)
        {
            Assert.Matches("^" + prefix + @":\{[A-Za-z0-9_-]{11}\}:[A-Za-z0-9_-]{22}(:l)?$", key);
            var ttl = long.Parse(fixture.Server.Cli("PTTL", key), System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(ttl, 1, 86_400_000L + 1);
        }
    }

    [Fact]
    public async Task Over_limit_keys_are_answered_locally_with_a_decreasing_retry_after()
    {
        var clock = TestStores.Clock(Start);
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var now = TestStores.Micros(Start);
        var limit = Limit.Gcra(new Rate(2, 1, RateUnit.Second));
        var check = new RateLimitCheck(limit, StoreKey.Create("cache", "alice"), 1, false);
        var other = new RateLimitCheck(Limit.FixedWindow(new Rate(100, 1, RateUnit.Minute)), StoreKey.Create("other", "alice"), 1, false);
        var outcomes = new StoreOutcome[2];
        await store.DecideAsync(new[] { check }, outcomes, now);
        await store.DecideAsync(new[] { check }, outcomes, now);
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal(500_000, outcomes[0].Outcome.RetryAfterMicroseconds);
        var trips = store.RoundTrips;

        clock.Advance(TimeSpan.FromMilliseconds(200));
        now += 200_000;
        await store.DecideAsync(new[] { check, other }, outcomes, now);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal(300_000, outcomes[0].Outcome.RetryAfterMicroseconds);
        Assert.False(outcomes[1].Committed);
        Assert.Equal(trips, store.RoundTrips);

        // TryDecide answers from the cache, synchronously.
        clock.Advance(TimeSpan.FromMilliseconds(100));
        Assert.True(store.TryDecide(new[] { check }, outcomes));
        Assert.Equal(200_000, outcomes[0].Outcome.RetryAfterMicroseconds);

        // Cost-0 probes and other costs always go to Redis.
        now += 100_000;
        await store.DecideAsync(new[] { check with { Cost = 0 } }, outcomes, now);
        Assert.Equal(trips + 1, store.RoundTrips);
        Assert.False(store.TryDecide(new[] { check with { Cost = 0 } }, outcomes));
        Assert.False(store.TryDecide(new[] { other }, outcomes));

        // Once the retry has passed, the key goes to Redis again and is allowed.
        clock.Advance(TimeSpan.FromMilliseconds(200));
        now += 200_000;
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.True(outcomes[0].Committed);
        Assert.Equal(trips + 2, store.RoundTrips);
    }

    [Fact]
    public async Task Without_the_over_limit_cache_every_denial_asks_redis_and_TryDecide_declines()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false);
        var check = new RateLimitCheck(Limit.Gcra(new Rate(1, 1, RateUnit.Hour)), StoreKey.Create("nocache", "alice"), 1, false);
        Assert.True((await store.DecideOneAsync(check)).Committed);
        for (var i = 0; i < 3; i++)
        {
            Assert.False((await store.DecideOneAsync(check)).Outcome.IsAllowed);
            Assert.False(store.TryDecide(new[] { check }, new StoreOutcome[1]));
        }

        Assert.Equal(4, store.RoundTrips);
        Assert.Equal(0, store.LocalDecisions);
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.DecideAsync(new[] { check with { Cost = -1 } }, new StoreOutcome[1]));
        await Assert.ThrowsAsync<ArgumentException>(async () => await store.DecideAsync(new[] { check, check }, new StoreOutcome[1]));
    }

    [Fact]
    public async Task Concurrency_leases_are_released_and_expire()
    {
        var clock = TestStores.Clock(Start);
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var now = TestStores.Micros(Start);
        var limit = Limit.Concurrency(2, TimeSpan.FromSeconds(10));
        var check = new RateLimitCheck(limit, StoreKey.Create("conc", "alice"), 1, false);
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes, now);
        var first = outcomes[0];
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.True(outcomes[0].Committed);
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.False(outcomes[0].Outcome.IsAllowed);

        await store.ReleaseAsync(check, first.LeaseId);
        await store.ReleaseAsync(check, first.LeaseId);
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.True(outcomes[0].Committed);
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.False(outcomes[0].Outcome.IsAllowed);

        // Never cached: a denied concurrency check asks Redis each time.
        var trips = store.RoundTrips;
        await store.DecideAsync(new[] { check }, outcomes, now + 10_000_001);
        Assert.True(outcomes[0].Committed);
        Assert.Equal(trips + 1, store.RoundTrips);
    }

    [Fact]
    public async Task Concurrency_keeps_the_sum_of_its_leases_through_grants_releases_and_expiry()
    {
        // A decision reads the permits in flight from the key's sum ('#', scored by minus the permits held), not by
        // reading every lease; every path that adds or removes a lease must keep it exact.
        var clock = TestStores.Clock(Start);
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var now = TestStores.Micros(Start);
        var limit = Limit.Concurrency(1_005, TimeSpan.FromSeconds(10));
        var one = new RateLimitCheck(limit, StoreKey.Create("sum", "alice"), 1, false);
        var heavy = one with { Cost = 5 };
        var key = RedisKeys.For(store.Options.KeyPrefix, one.Key, LimitAlgorithm.Concurrency).ToString();
        var outcomes = new StoreOutcome[1];
        for (var i = 0; i < 1_000; i++)
        {
            await store.DecideAsync(new[] { one }, outcomes, now);
            Assert.True(outcomes[0].Committed);
        }

        await store.DecideAsync(new[] { heavy }, outcomes, now + 1_000_000);
        var held = outcomes[0];
        Assert.True(held.Committed);
        Assert.Equal("-1005", fixture.Server.Cli("ZSCORE", key, "#").Trim());
        await store.DecideAsync(new[] { one }, outcomes, now + 1_000_000);
        Assert.False(outcomes[0].Outcome.IsAllowed);

        // A weighted release gives back its permits, once.
        await store.ReleaseAsync(heavy, held.LeaseId);
        await store.ReleaseAsync(heavy, held.LeaseId);
        Assert.Equal("-1000", fixture.Server.Cli("ZSCORE", key, "#").Trim());
        for (var i = 0; i < 5; i++)
        {
            await store.DecideAsync(new[] { one }, outcomes, now + 1_000_000);
            Assert.True(outcomes[0].Committed);
        }

        await store.DecideAsync(new[] { one }, outcomes, now + 1_000_000);
        Assert.False(outcomes[0].Outcome.IsAllowed);

        // The first 1,000 leases expire together: the next decision takes them out of the set and the sum.
        await store.DecideAsync(new[] { heavy }, outcomes, now + 10_000_001);
        Assert.True(outcomes[0].Committed);
        Assert.Equal("-10", fixture.Server.Cli("ZSCORE", key, "#").Trim());
        Assert.Equal("7", fixture.Server.Cli("ZCARD", key).Trim()); // five single leases, the heavy one, the sum
    }

    [Fact]
    public async Task Concurrency_leases_without_their_sum_are_counted_and_the_sum_restored()
    {
        // A key edited by hand (its sum deleted) must not hand out the permits its leases hold.
        var clock = TestStores.Clock(Start);
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var now = TestStores.Micros(Start);
        var check = new RateLimitCheck(Limit.Concurrency(3, TimeSpan.FromSeconds(10)), StoreKey.Create("unsummed", "alice"), 1, false);
        var key = RedisKeys.For(store.Options.KeyPrefix, check.Key, LimitAlgorithm.Concurrency).ToString();
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check with { Cost = 2 } }, outcomes, now);
        Assert.True(outcomes[0].Committed);
        Assert.Equal("1", fixture.Server.Cli("ZREM", key, "#").Trim());

        await store.DecideAsync(new[] { check with { Cost = 2 } }, outcomes, now);
        Assert.False(outcomes[0].Outcome.IsAllowed);
        Assert.Equal("-2", fixture.Server.Cli("ZSCORE", key, "#").Trim());
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.True(outcomes[0].Committed);
        await store.DecideAsync(new[] { check }, outcomes, now);
        Assert.False(outcomes[0].Outcome.IsAllowed);
    }

    [Theory]
    [InlineData("a lease expires")]
    [InlineData("a lease is released")]
    [InlineData("the sum is positive")]
    public async Task A_concurrency_sum_edited_by_hand_is_never_trusted(string then)
    {
        // Expiry and release give permits back to the sum; neither may turn a missing sum into one that undercounts.
        var clock = TestStores.Clock(Start);
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var now = TestStores.Micros(Start);
        var check = new RateLimitCheck(Limit.Concurrency(3, TimeSpan.FromSeconds(10)), StoreKey.Create("edited", "alice"), 1, false);
        var key = RedisKeys.For(store.Options.KeyPrefix, check.Key, LimitAlgorithm.Concurrency).ToString();
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check with { Cost = 2 } }, outcomes, now);
        Assert.True(outcomes[0].Committed);
        await store.DecideAsync(new[] { check }, outcomes, now + 5_000_000);
        var second = outcomes[0];
        Assert.True(second.Committed);
        Assert.Equal("1", fixture.Server.Cli("ZREM", key, "#").Trim());

        long at;
        long held;
        switch (then)
        {
            case "a lease expires":
                at = now + 11_000_000; // the first lease (2) has expired; the second (1) is held
                held = 1;
                break;
            case "a lease is released":
                await store.ReleaseAsync(check, second.LeaseId);
                at = now + 5_000_001; // the first lease (2) is held
                held = 2;
                break;
            default:
                Assert.Equal("1", fixture.Server.Cli("ZADD", key, "7", "#").Trim());
                at = now + 5_000_001; // both leases (3) are held
                held = 3;
                break;
        }

        await store.DecideAsync(new[] { check with { Cost = 3 - held + 1 } }, outcomes, at);
        Assert.False(outcomes[0].Outcome.IsAllowed, $"{held} permits are held of 3");
        Assert.Equal((-held).ToString(System.Globalization.CultureInfo.InvariantCulture), fixture.Server.Cli("ZSCORE", key, "#").Trim());
        if (held < 3)
        {
            await store.DecideAsync(new[] { check with { Cost = 3 - held } }, outcomes, at);
            Assert.True(outcomes[0].Committed);
        }

        Assert.InRange(long.Parse(fixture.Server.Cli("PTTL", key), System.Globalization.CultureInfo.InvariantCulture), 1, 86_400_000);
    }

    [Fact]
    public async Task Leased_mode_serves_slices_locally()
    {
        var clock = TestStores.Clock(Start);
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: clock);
        var limit = Limit.Gcra(new Rate(1000, 1, RateUnit.Hour)).WithLeasedSlice(10);
        var check = new RateLimitCheck(limit, StoreKey.Create("global", "everything"), 1, false);
        for (var i = 0; i < 95; i++)
        {
            Assert.True((await store.DecideOneAsync(check)).Committed);
        }

        // Ten slices of ten were taken; 95 spent, 85 of them locally.
        Assert.Equal(10, store.RoundTrips);
        Assert.Equal(85, store.LocalDecisions);
        var probe = await store.DecideOneAsync(check with { Cost = 0 });
        Assert.Equal(900, probe.Outcome.Remaining);
        Assert.True(store.TryDecide(new[] { check }, new StoreOutcome[1]));

        // A slice expires: what is left of it is dropped, and the next request takes a new slice.
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.False(store.TryDecide(new[] { check }, new StoreOutcome[1]));
        Assert.True((await store.DecideOneAsync(check)).Committed);
    }

    [Theory]
    [InlineData("\u017B\u017D")]
    [InlineData("caf\u00E9")]
    [InlineData("a\u007Fb")]
    [InlineData("tab\tx")]
    [InlineData("a:b")]
    [InlineData("a}")]
    public void A_key_prefix_outside_printable_ASCII_or_with_braces_is_rejected(string prefix)
    {
        var error = Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", KeyPrefix = prefix }.Validate());
        Assert.Equal(nameof(RedisStoreOptions.KeyPrefix), error.ParamName);
        Assert.Contains("KeyPrefix", error.Message, StringComparison.Ordinal);
        Assert.Contains("printable ASCII", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fg")]
    [InlineData("app-1_v2.rl~!")]
    public void A_printable_ASCII_key_prefix_is_accepted(string prefix) =>
        new RedisStoreOptions { Configuration = "x", KeyPrefix = prefix }.Validate();

    [Fact]
    public void Options_are_validated_with_clear_errors()
    {
        Assert.Contains("configuration", Assert.Throws<ArgumentException>(() => new RedisStoreOptions().Validate()).Message, StringComparison.OrdinalIgnoreCase);
        Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", KeyPrefix = "a{b}" }.Validate());
        Assert.Throws<ArgumentException>(() => new RedisStoreOptions { Configuration = "x", KeyPrefix = "" }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new RedisStoreOptions { Configuration = "x", Timeout = TimeSpan.Zero }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new RedisStoreOptions { Configuration = "x", Replicas = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new RedisStoreOptions { Configuration = "x", FailureMode = (StoreFailureMode)9 }.Validate());
        Assert.Throws<ArgumentException>(() => RedisStore.Connect(new RedisStoreOptions { Configuration = "127.0.0.1:1,unknownoption=1" }));
        Assert.Throws<InvalidOperationException>(() => Limit.Concurrency(3).WithLeasedSlice(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Gcra(new Rate(10, 1, RateUnit.Second)).WithLeasedSlice(11));
    }

    [Fact]
    public void A_replica_s_local_share_of_a_gcra_limit_is_as_exact_as_the_limit()
    {
        // 100k/s is exact (10 µs). A third of it as 33,333/s would round its interval from 30.0003 to 31 µs (3 % less,
        // and a rate Limit.Gcra refuses); as 100k per 3 s it is exactly 30 µs.
        var share = ReplicaShare.Of(Limit.Gcra(Rate.Parse("100k/s"), 3000), 3);
        Assert.Equal(30, share.IntervalMicroseconds);
        Assert.Equal(1000, share.Burst);

        // 1M/s over 3 replicas: 3 µs a request, where 333,333/s would round to 4 µs and admit a quarter less.
        Assert.Equal(3, ReplicaShare.Of(Limit.Gcra(Rate.Parse("1M/s"), 100), 3).IntervalMicroseconds);

        // A month over 2,000 replicas is past what a period may span: the amount is divided instead, and nothing throws.
        var monthly = ReplicaShare.Of(Limit.Gcra(Rate.Parse("1000/month"), 10), 2000);
        Assert.Equal(1, monthly.Amount);
        Assert.Equal(1, monthly.Burst);
    }

    [Fact]
    public async Task The_acl_the_docs_give_is_all_the_store_needs()
    {
        // docs/redis.md, Topologies: the client's handshake, the commands the store sends, and those its script calls.
        // Garnet checks ACLs only with --auth ACL, and its ACLs have no key patterns (it refuses ~fg:*): docs/redis.md, Servers.
        var garnet = fixture.Server.Kind == ServerKind.Garnet;
        using var server = garnet ? RedisServer.StartGarnet(null, "--auth", "ACL") : RedisServer.Start();
        Assert.Equal("OK", server.Cli("ACL", "SETUSER", "floodgate", "on", ">acl-secret", garnet ? "~*" : "~fg:*", "+@connection", "+info", "+config|get", "+cluster|nodes", "+cluster|slots", "+evalsha", "+eval", "+script|load", "+zrem", "+mget", "+set", "+zadd", "+zincrby", "+zscore", "+zrange", "+zrangebyscore", "+zremrangebyscore", "+pexpire", "+time"));
        await using var store = await TestStores.ConnectAsync(server.Configuration + ",user=floodgate,password=acl-secret", prefix: "fg");

        await TestStores.SpendThreePerHourAsync(store, "acl");
        var check = new RateLimitCheck(Limit.Concurrency(1), StoreKey.Create("acl", "alice"), 1, false);
        var held = await store.DecideOneAsync(check);
        Assert.True(held.Committed);
        Assert.False((await store.DecideOneAsync(check)).Outcome.IsAllowed);
        await store.ReleaseAsync(check, held.LeaseId);
        Assert.True((await store.DecideOneAsync(check)).Committed);
        Assert.Equal(0, store.Failures);

        // Loaded by the store on connecting, not on a first NOSCRIPT.
        Assert.Equal("1", server.Cli("SCRIPT", "EXISTS", TestStores.ScriptSha).Trim());
        Assert.Equal("1", server.Cli("SCRIPT", "EXISTS", TestStores.Sha(RedisStore.ReleaseScript)).Trim());
    }

    [Fact]
    public async Task The_store_registers_as_the_rate_limit_store()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IRateLimitStore>(new MemoryStore());
        services.AddFloodgateRedisStore(o =>
        {
            o.Configuration = fixture.Server.Configuration;
            o.Timeout = TimeSpan.FromSeconds(2);
        });
        await using var provider = services.BuildServiceProvider();
        var store = Assert.IsType<RedisStore>(provider.GetRequiredService<IRateLimitStore>());

        // Without a host (HostingTests has one), the store starts connecting when first resolved, in the background.
        await store.Connecting.WaitAsync(TimeSpan.FromSeconds(10));
        var check = new RateLimitCheck(Limit.Gcra(new Rate(5, 1, RateUnit.Second)), StoreKey.Create("di", Guid.NewGuid().ToString()), 1, false);
        Assert.True((await store.DecideOneAsync(check)).Committed);
        Assert.True(store.Connection.IsConnected);
    }
}
