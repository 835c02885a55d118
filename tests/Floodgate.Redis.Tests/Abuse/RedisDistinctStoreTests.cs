using System.Net;
using Floodgate.Abuse;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>Distinct rules counted in a real redis-server: exact sets, then HyperLogLogs, shared by two replicas.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisDistinctStoreTests(RedisFixture fixture)
{
    // Redis's HyperLogLog: 16,384 registers, a standard error of 1.04/sqrt(16384) = 0.81 %.
    private static readonly double RedisStandardError = 1.04 / Math.Sqrt(16384);

    private static string NewPrefix() => "dst-" + Guid.NewGuid().ToString("N")[..8];

    private static RateLimitRule Rule(KeyPart per, KeyPart of, string limit, int v4 = 32) =>
        new("distinct", RateLimitTier.User, Limit.FixedWindow(Rate.Parse(limit)))
        {
            Key = [per],
            Distinct = new DistinctCounting { Of = of, Ipv4Prefix = v4 },
        };

    private static RateLimitEngine Replica(RateLimitRule rule, IConnectionMultiplexer connection, string prefix, TimeProvider time) =>
        new(new RateLimitPolicy([rule]), new MemoryStore(null, time), time) { DistinctStore = new RedisDistinctStore(connection, prefix) };

    private static RequestContext From(string subject, IPAddress ip) => new() { Subject = subject, ClientIp = ip };

    [Fact]
    public async Task Two_replicas_count_one_set_of_addresses_per_subject_and_agree_on_the_verdict()
    {
        var prefix = NewPrefix();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var connectionA = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        using var connectionB = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var rule = Rule(KeyPart.Subject, KeyPart.ClientIp, "10/hour");
        var a = Replica(rule, connectionA, prefix, time);
        var b = Replica(rule, connectionB, prefix, time);

        // Ten addresses, alternating replicas, each seen twice: exactly ten, under the limit on both.
        for (var i = 1; i <= 10; i++)
        {
            var replica = i % 2 == 0 ? a : b;
            Assert.False((await replica.CountDistinctAsync(replica.Policy, From("alice", IPAddress.Parse($"198.51.100.{i}")))).IsOver);
            Assert.False((await (i % 2 == 0 ? b : a).CountDistinctAsync(a.Policy, From("alice", IPAddress.Parse($"198.51.100.{i}")))).IsOver);
        }

        var over = await a.CountDistinctAsync(a.Policy, From("alice", IPAddress.Parse("198.51.100.11")));
        Assert.True(over.IsOver);
        Assert.Equal(11, over.Count);
        Assert.True((await b.CountDistinctAsync(b.Policy, From("alice", IPAddress.Parse("198.51.100.1")))).IsOver);
        Assert.False((await b.CountDistinctAsync(b.Policy, From("bob", IPAddress.Parse("198.51.100.1")))).IsOver);

        // The window's keys expire with it; the next window starts over on both.
        time.Advance(TimeSpan.FromHours(1));
        Assert.False((await b.CountDistinctAsync(b.Policy, From("alice", IPAddress.Parse("198.51.100.12")))).IsOver);
    }

    [Fact]
    public async Task Exact_up_to_the_capacity_then_a_hyperloglog_within_its_error_for_ten_thousand_subjects_per_address()
    {
        var prefix = NewPrefix();
        using var connectionA = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        using var connectionB = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var storeA = new RedisDistinctStore(connectionA, prefix);
        var storeB = new RedisDistinctStore(connectionB, prefix);
        var key = StoreKey.Create("distinct", "203.0.113.50");
        var window = new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero);
        var period = TimeSpan.FromDays(3650);
        var random = new Random(24);
        var hashes = Enumerable.Range(0, 10_000).Select(_ => (ulong)random.NextInt64()).ToArray();

        for (var i = 0; i < DistinctSketch.ExactCapacity; i++)
        {
            Assert.Equal(i + 1, await (i % 2 == 0 ? storeA : storeB).AddAsync(key, hashes[i], window, period));
        }

        // The rest in batches from both replicas (pipelined by the connections), each value twice.
        long last = 0;
        for (var from = DistinctSketch.ExactCapacity; from < hashes.Length; from += 500)
        {
            var batch = hashes.Skip(from).Take(500).SelectMany(h => new[] { storeA.AddAsync(key, h, window, period).AsTask(), storeB.AddAsync(key, h, window, period).AsTask() });
            var counts = await Task.WhenAll(batch);
            last = counts.Max();
        }

        last = await storeA.AddAsync(key, hashes[0], window, period);
        var error = (last - 10_000) / 10_000.0;
        Assert.True(Math.Abs(error) <= 3 * RedisStandardError, $"{last} for 10,000 distinct values: error {error:P2}");

        var database = connectionA.GetDatabase();
        var name = $"{prefix}:dst:{{{key.ValueHex}:{window.ToUnixTimeMilliseconds()}}}";
        Assert.False(await database.KeyExistsAsync(name + ":s"));
        Assert.True(await database.KeyExistsAsync(name + ":h"));
        Assert.True(await database.KeyTimeToLiveAsync(name + ":h") is { } ttl && ttl > TimeSpan.FromDays(3000));
    }

    [Fact]
    public async Task Networks_per_subject_across_two_replicas()
    {
        var prefix = NewPrefix();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var rule = Rule(KeyPart.Subject, KeyPart.ClientIp, "3/hour", v4: 24);
        var a = Replica(rule, connection, prefix, time);
        var b = Replica(rule, connection, prefix, time);
        for (var i = 1; i <= 100; i++)
        {
            Assert.False((await (i % 2 == 0 ? a : b).CountDistinctAsync(a.Policy, From("alice", IPAddress.Parse($"198.51.{i % 3}.{i}")))).IsOver);
        }

        Assert.True((await b.CountDistinctAsync(b.Policy, From("alice", IPAddress.Parse("198.51.77.1")))).IsOver);
    }

    [Fact]
    public async Task An_unreachable_redis_costs_the_timeout_and_lets_the_request_through()
    {
        var options = ConfigurationOptions.Parse("127.0.0.1:1");
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 100;
        using var connection = await ConnectionMultiplexer.ConnectAsync(options);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var engine = new RateLimitEngine(new RateLimitPolicy([Rule(KeyPart.Subject, KeyPart.ClientIp, "1/hour")]), new MemoryStore(null, time), time)
        {
            DistinctStore = new RedisDistinctStore(connection, NewPrefix()) { Timeout = TimeSpan.FromMilliseconds(100) },
        };

        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 1; i <= 3; i++)
        {
            Assert.False((await engine.CountDistinctAsync(engine.Policy, From("alice", IPAddress.Parse($"198.51.100.{i}")))).IsOver);
        }

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
    }
}
