using System.Diagnostics;
using System.Net;
using Floodgate.Bans;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>Bans kept in a real redis-server: shared by two replicas, bounded, pruned as they are read.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisBanStoreTests(RedisFixture fixture)
{
    private static Ban Make(BanKind kind, string text, DateTimeOffset now, TimeSpan ttl, string source = Ban.AdminSource)
    {
        Assert.True(Ban.TryCanonical(kind, text, out var target, out _));
        return new Ban(kind, target, source, now, now + ttl);
    }

    private static async Task<bool> HoldsWithinAsync(Func<bool> condition, TimeSpan within)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > within)
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }

    private static string NewPrefix() => "bans-" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task A_ban_added_on_one_replica_is_enforced_on_the_other_within_a_second_and_lifted_the_same_way()
    {
        var prefix = NewPrefix();
        using var connectionA = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        using var connectionB = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using var a = new RedisBanStore(connectionA, prefix);
        await using var b = new RedisBanStore(connectionB, prefix);
        await Task.WhenAll(a.Ready, b.Ready);

        var now = DateTimeOffset.UtcNow;
        Assert.True(await a.AddAsync(Make(BanKind.Network, "203.0.113.0/24", now, TimeSpan.FromMinutes(10))));
        Assert.True(await a.AddAsync(Make(BanKind.Subject, "mallory", now, TimeSpan.FromMinutes(10))));
        var added = Stopwatch.StartNew();
        Assert.True(await HoldsWithinAsync(() => b.TryFind(IPAddress.Parse("203.0.113.9"), out _) && b.TryFindSubject("mallory", out _), TimeSpan.FromSeconds(1)), $"not seen after {added.Elapsed}");
        Assert.Equal(["subject:mallory", "cidr:203.0.113.0/24"], (await b.ListAsync(10)).Select(x => x.Id).Order(StringComparer.Ordinal).Reverse());

        var removed = await b.RemoveAsync(BanKind.Network, "203.0.113.0/24");
        Assert.Equal("cidr:203.0.113.0/24", removed?.Id);
        Assert.True(await HoldsWithinAsync(() => !a.TryFind(IPAddress.Parse("203.0.113.9"), out _), TimeSpan.FromSeconds(1)));
        Assert.True(a.TryFindSubject("mallory", out _));
        Assert.Null(await a.RemoveAsync(BanKind.Network, "203.0.113.0/24"));
    }

    [Fact]
    public async Task Lapsed_bans_are_pruned_from_redis_as_they_are_read_and_the_set_is_bounded()
    {
        var prefix = NewPrefix();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using var store = new RedisBanStore(connection, prefix, time, maxBans: 3);
        await store.Ready;

        var now = time.GetUtcNow();
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.1", now, TimeSpan.FromMinutes(1))));
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.2", now, TimeSpan.FromMinutes(5))));
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.3", now, TimeSpan.FromMinutes(5), source: "ip-flood")));
        Assert.False(await store.AddAsync(Make(BanKind.Ip, "198.51.100.4", now, TimeSpan.FromMinutes(5))));

        // A minute on, the first has lapsed: the next write prunes it from the hash and the index, making room.
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True(await store.AddAsync(Make(BanKind.Ip, "198.51.100.4", time.GetUtcNow(), TimeSpan.FromMinutes(5))));
        var database = connection.GetDatabase();
        Assert.Equal(3, await database.HashLengthAsync($"{prefix}:{{bans}}:all"));
        Assert.Equal(3, await database.SortedSetLengthAsync($"{prefix}:{{bans}}:expiry"));
        Assert.False(await database.HashExistsAsync($"{prefix}:{{bans}}:all", "ip:198.51.100.1"));

        time.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(["ip:198.51.100.4"], (await store.ListAsync(10)).Select(x => x.Id));
        Assert.Equal(1, await database.HashLengthAsync($"{prefix}:{{bans}}:all"));
        Assert.Equal(1, await database.SortedSetLengthAsync($"{prefix}:{{bans}}:expiry"));
    }

    [Fact]
    public async Task A_new_replica_reads_the_bans_in_force_at_start()
    {
        var prefix = NewPrefix();
        using var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using (var first = new RedisBanStore(connection, prefix))
        {
            await first.Ready;
            Assert.True(await first.AddAsync(Make(BanKind.Ip, "2001:db8::7", DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5))));
        }

        await using var second = new RedisBanStore(connection, prefix);
        await second.Ready;
        Assert.True(second.TryFind(IPAddress.Parse("2001:db8::7"), out var ban));
        Assert.Equal(Ban.AdminSource, ban.Source);
    }

    [Fact]
    public async Task The_redis_store_resets_one_key()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var check = new RateLimitCheck(Limit.FixedWindow(Rate.Parse("1/h")), StoreKey.Create("reset-" + Guid.NewGuid().ToString("N"), "alice"), 1, false);
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes);
        await store.DecideAsync(new[] { check }, outcomes);
        Assert.False(outcomes[0].Outcome.IsAllowed);

        Assert.True(await store.ResetAsync(check));
        Assert.False(await store.ResetAsync(check));
        await store.DecideAsync(new[] { check }, outcomes);
        Assert.True(outcomes[0].Outcome.IsAllowed);
    }
}
