using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>
/// renew.lua on a real redis-server: a renewal moves a lease's expiry (and the key's TTL) by the server's clock, never
/// brings back a lease that is gone, and two replicas' engines keep exactly their permits between them, while the
/// leases of a replica that stops renewing end at their timeout. Real time throughout (the server's clock decides), in
/// short, bounded waits. Run on every server the store claims (Servers.cs).
/// </summary>
public abstract class RenewalTests(IServerFixture fixture)
{
    private static RateLimitCheck Check(Limit limit, string value = "alice", long cost = 1) => new(limit, StoreKey.Create("streams", value), cost, false);

    private static string Member(long leaseId, long permits = 1) => string.Create(CultureInfo.InvariantCulture, $"{leaseId}:{permits}");

    private long ServerNow()
    {
        var time = fixture.Server.Cli("TIME").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return (long.Parse(time[0], CultureInfo.InvariantCulture) * 1_000_000) + long.Parse(time[1], CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_renewal_moves_the_lease_to_one_timeout_from_the_server_s_now_and_the_key_s_ttl_with_it()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var check = Check(Limit.Concurrency(2, TimeSpan.FromMinutes(10)));
        var key = TestStores.KeyOf(store, check);
        var held = await store.DecideOneAsync(check);
        Assert.True(held.Committed);
        var granted = (long)store.Database().SortedSetScore(key, Member(held.LeaseId))!.Value;

        await Task.Delay(50);
        var before = ServerNow();
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(check, held.LeaseId));
        var after = ServerNow();
        var renewed = (long)store.Database().SortedSetScore(key, Member(held.LeaseId))!.Value;
        Assert.InRange(renewed, before + 600_000_000, after + 600_000_000);
        Assert.True(renewed - granted >= 50_000, $"Moved by {renewed - granted} µs only.");
        Assert.InRange((long)store.Database().KeyTimeToLive(key)!.Value.TotalMilliseconds, 599_000, 600_000);

        // The sum of permits is untouched: the lease counted before and counts now.
        Assert.Equal("-1", fixture.Server.Cli("ZSCORE", key, "#").Trim());

        // A lease that expires later (a rule whose timeout is longer, on the same key) keeps the key's TTL: a renewal of
        // the other never shortens it.
        var longer = await store.DecideOneAsync(check with { Limit = Limit.Concurrency(2, TimeSpan.FromMinutes(20)) });
        Assert.True(longer.Committed);
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(check, held.LeaseId));
        Assert.InRange((long)store.Database().KeyTimeToLive(key)!.Value.TotalMilliseconds, 1_199_000, 1_200_000);
        Assert.Equal("-2", fixture.Server.Cli("ZSCORE", key, "#").Trim());
        Assert.Equal(0, store.Failures);
    }

    [Fact]
    public async Task A_lease_renewed_past_its_timeout_still_counts_and_one_left_alone_expires()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var timeout = TimeSpan.FromMilliseconds(1500);
        var check = Check(Limit.Concurrency(2, timeout));
        var renewed = await store.DecideOneAsync(check);
        var abandoned = await store.DecideOneAsync(check);
        Assert.True(renewed.Committed && abandoned.Committed);

        // Renewed every 300 ms for more than two timeouts: the other lease expires meanwhile, this one does not.
        var held = Stopwatch.StartNew();
        while (held.Elapsed < timeout * 2.2)
        {
            await Task.Delay(300);
            Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(check, renewed.LeaseId));
        }

        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(check, abandoned.LeaseId));
        var third = await store.DecideOneAsync(check);
        Assert.True(third.Committed);
        var full = await store.DecideOneAsync(check);
        Assert.False(full.Outcome.IsAllowed);
        Assert.False(full.IsStoreFailure);
        Assert.Equal(0, full.Outcome.Remaining);
    }

    [Fact]
    public async Task Renewing_a_released_or_expired_lease_changes_nothing_and_says_it_is_not_held()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var check = Check(Limit.Concurrency(2, TimeSpan.FromMinutes(1)));
        var key = TestStores.KeyOf(store, check);

        // Released: the renewal adds no member back, and the sum stays.
        var released = await store.DecideOneAsync(check);
        await store.ReleaseAsync(check, released.LeaseId);
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(check, released.LeaseId));
        Assert.Null(store.Database().SortedSetScore(key, Member(released.LeaseId)));
        Assert.Equal("0", fixture.Server.Cli("ZSCORE", key, "#").Trim());

        // Expired and not yet taken out by a decision (the key lives on, with a lease of a longer timeout): left as it was,
        // for the next decision to take out.
        var keeper = await store.DecideOneAsync(check);
        Assert.True(keeper.Committed);
        var expired = await store.DecideOneAsync(check with { Limit = Limit.Concurrency(2, TimeSpan.FromMilliseconds(200)) });
        Assert.True(expired.Committed);
        var score = store.Database().SortedSetScore(key, Member(expired.LeaseId));
        Assert.NotNull(score);
        await Task.Delay(300);
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(check, expired.LeaseId));
        Assert.Equal(score, store.Database().SortedSetScore(key, Member(expired.LeaseId)));
        Assert.Equal("-2", fixture.Server.Cli("ZSCORE", key, "#").Trim());

        // Its permit is free: the next decision takes it (the expired lease leaves the set and the sum), once.
        var next = await store.DecideOneAsync(check);
        Assert.True(next.Committed);
        Assert.Null(store.Database().SortedSetScore(key, Member(expired.LeaseId)));
        Assert.Equal("-2", fixture.Server.Cli("ZSCORE", key, "#").Trim());
        Assert.False((await store.DecideOneAsync(check)).Outcome.IsAllowed);

        // Never granted, or another key's.
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(check, next.LeaseId ^ 1));
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(Check(check.Limit, "bob"), next.LeaseId));
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(check, 0));
        Assert.Equal(0, store.Failures);
    }

    [Fact]
    public async Task Two_replicas_keep_their_permits_while_they_renew_and_a_dead_replica_s_end_at_their_timeout()
    {
        // Two stores (one per replica) on one Redis, one key prefix, each with its engine and renewer on the system clock.
        var prefix = "renew" + Guid.NewGuid().ToString("N")[..8];
        await using var storeA = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        await using var storeB = await TestStores.ConnectAsync(fixture.Server, prefix: prefix);
        var partitioned = new Partitionable(storeB);
        using var metersA = new TestMeterFactory();
        using var metersB = new TestMeterFactory();
        var timeout = TimeSpan.FromSeconds(1);
        var policy = new RateLimitPolicy([new RateLimitRule("streams", RateLimitTier.Global, Limit.Concurrency(2, timeout))]);
        var replicaA = new RateLimitEngine(policy, storeA, meterFactory: metersA);
        var replicaB = new RateLimitEngine(policy, partitioned, meterFactory: metersB);
        using var renewalsB = new RenewalCounts(metersB);

        var a1 = await replicaA.EvaluateAsync(Request());
        var b1 = await replicaB.EvaluateAsync(Request());
        Assert.True(a1.IsAllowed && b1.IsAllowed);
        replicaA.RenewLeases(a1);
        replicaB.RenewLeases(b1);

        // Past three timeouts, both requests still hold their permits: neither replica admits a third.
        await Task.Delay(timeout * 3.5);
        Assert.False((await replicaA.EvaluateAsync(Request())).IsAllowed);
        Assert.False((await replicaB.EvaluateAsync(Request())).IsAllowed);
        Assert.True(renewalsB["renewed"] >= 6, $"B renewed {renewalsB["renewed"]} times.");

        // A's request ends: B takes the permit at once.
        await replicaA.ReleaseAsync(a1);
        var b2 = await replicaB.EvaluateAsync(Request());
        Assert.True(b2.IsAllowed);
        replicaB.RenewLeases(b2);

        // B is cut off (a crash, as Redis sees it: its renewals no longer arrive). Its two leases end at their timeout.
        partitioned.Cut = true;
        var cut = Stopwatch.StartNew();
        var taken = new List<RateLimitResult>();
        while (taken.Count < 2 && cut.Elapsed < TimeSpan.FromSeconds(10))
        {
            var result = await replicaA.EvaluateAsync(Request());
            if (result.IsAllowed)
            {
                replicaA.RenewLeases(result);
                taken.Add(result);
            }
            else
            {
                await Task.Delay(50);
            }
        }

        Assert.Equal(2, taken.Count);
        Assert.True(cut.Elapsed > timeout * 0.8, $"B's permits were free after {cut.Elapsed}, before their timeout could pass.");

        // B comes back: its renewals find the leases gone, count them lost, and take nothing back.
        partitioned.Cut = false;
        var back = Stopwatch.StartNew();
        while (renewalsB["lost"] < 2 && back.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }

        Assert.Equal(2, renewalsB["lost"]);
        Assert.Equal(0, replicaB.RenewingRequests);
        Assert.False((await replicaB.EvaluateAsync(Request())).IsAllowed);
        Assert.False((await replicaA.EvaluateAsync(Request())).IsAllowed);

        await replicaB.ReleaseAsync(b1);
        await replicaB.ReleaseAsync(b2);
        foreach (var result in taken)
        {
            await replicaA.ReleaseAsync(result);
        }

        Assert.True((await replicaB.EvaluateAsync(Request())).IsAllowed);
    }

    [Fact]
    public async Task A_renewal_Redis_cannot_answer_fails_without_throwing_and_a_local_fallback_lease_is_renewed_locally()
    {
        await using var store = await RedisStore.ConnectAsync(new RedisStoreOptions
        {
            Configuration = $"127.0.0.1:{RedisServer.FreePort(cluster: false)},connectTimeout=200",
            Timeout = TimeSpan.FromMilliseconds(200),
            FailureMode = StoreFailureMode.Local,
        });
        var check = Check(Limit.Concurrency(2, TimeSpan.FromSeconds(10)));

        // A lease of the local fallback (Redis is down) lives in this process and is renewed there.
        var local = await store.DecideOneAsync(check);
        Assert.True(local.IsStoreFailure && local.Committed);
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(check, local.LeaseId));

        // A Redis lease (bit 62 set) cannot be renewed now: failed, counted, never thrown.
        var failures = store.Failures;
        Assert.Equal(LeaseRenewal.Failed, await store.RenewAsync(check, (1L << 62) | 12345));
        Assert.True(store.Failures > failures);
    }

    [Fact]
    public async Task The_acl_the_docs_give_is_enough_to_renew_and_the_script_is_loaded_on_connecting()
    {
        // docs/redis.md, Topologies: the same user as StoreTests' ACL test; renew.lua calls nothing more. Garnet checks
        // ACLs only with --auth ACL, and has no key patterns (docs/redis.md, Servers).
        var garnet = fixture.Server.Kind == ServerKind.Garnet;
        using var server = garnet ? RedisServer.StartGarnet(null, "--auth", "ACL") : RedisServer.Start();
        Assert.Equal("OK", server.Cli("ACL", "SETUSER", "floodgate", "on", ">acl-secret", garnet ? "~*" : "~fg:*", "+@connection", "+info", "+config|get", "+cluster|nodes", "+cluster|slots", "+evalsha", "+eval", "+script|load", "+zrem", "+mget", "+set", "+zadd", "+zincrby", "+zscore", "+zrange", "+zrangebyscore", "+zremrangebyscore", "+pexpire", "+time"));
        await using var store = await TestStores.ConnectAsync(server.Configuration + ",user=floodgate,password=acl-secret", prefix: "fg");
        var check = Check(Limit.Concurrency(1, TimeSpan.FromMinutes(1)));
        var held = await store.DecideOneAsync(check);
        Assert.True(held.Committed);
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(check, held.LeaseId));
        await store.ReleaseAsync(check, held.LeaseId);
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(check, held.LeaseId));
        Assert.Equal(0, store.Failures);
        Assert.Equal("1", server.Cli("SCRIPT", "EXISTS", TestStores.Sha(RedisStore.RenewScript)).Trim());
    }

    private static RequestContext Request() => new() { Path = "/stream", Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7") };

    /// <summary>A replica's store that can be cut off from Redis: while cut, every call fails as an unreachable store's does.</summary>
    private sealed class Partitionable(RedisStore inner) : IRateLimitStore
    {
        public bool Cut { get; set; }

        public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            Cut ? throw new InvalidOperationException("cut off") : inner.DecideAsync(checks, outcomes, cancellationToken);

        public ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            Cut ? throw new InvalidOperationException("cut off") : inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);

        public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => !Cut && inner.TryDecide(checks, outcomes);

        public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            Cut ? default : inner.ReleaseAsync(check, leaseId, cancellationToken);

        public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            Cut ? new ValueTask<LeaseRenewal>(LeaseRenewal.Failed) : inner.RenewAsync(check, leaseId, cancellationToken);
    }

    /// <summary>The engine's <c>floodgate.lease.renewals</c>, by result.</summary>
    private sealed class RenewalCounts : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, long> _counts = new();

        public RenewalCounts(TestMeterFactory meters)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (meters.Meters.Contains(instrument.Meter) && instrument.Name == "floodgate.lease.renewals")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "result")
                    {
                        _counts.AddOrUpdate((string)tag.Value!, value, (_, total) => total + value);
                    }
                }
            });
            _listener.Start();
        }

        public long this[string result] => _counts.GetValueOrDefault(result);

        public void Dispose() => _listener.Dispose();
    }

    private sealed class TestMeterFactory : IMeterFactory
    {
        public ConcurrentBag<Meter> Meters { get; } = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            Meters.Add(meter);
            return meter;
        }

        public void Dispose()
        {
            foreach (var meter in Meters)
            {
                meter.Dispose();
            }
        }
    }
}
