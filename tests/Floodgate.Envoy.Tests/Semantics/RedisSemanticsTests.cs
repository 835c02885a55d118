using Envoy.Service.Ratelimit.V3;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Envoy.Tests;

/// <summary>
/// The semantics on a real redis-server (started on a free loopback port, killed by PID). The store decides at the fake
/// clock's time through its test entry point, so the values are as exact as on the memory store.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class RedisSemanticsTests(RedisFixture redis) : ShouldRateLimitSemantics, IDisposable
{
    private readonly FakeClockRedisStores _stores = new(redis.Server, "e");

    protected override IRateLimitStore CreateStore(FakeTimeProvider time) => _stores.Create(time);

    [Fact]
    public async Task On_the_redis_server_clock_a_fixed_window_counts_across_connections()
    {
        // No fake clock here: the script reads the server's TIME, as in production. A day-long window keeps the test
        // away from a window boundary.
        const string Yaml = "domain: live\ndescriptors:\n  - key: user\n    rate_limit: { unit: day, requests_per_unit: 2 }\n";
        var prefix = _stores.NewPrefix();
        RedisStore Store(TimeProvider _) =>
            _stores.Add(RedisStore.Connect(new RedisStoreOptions { Configuration = redis.Server.Configuration, KeyPrefix = prefix, Timeout = TimeSpan.FromSeconds(5) }));

        // Two service replicas sharing one Redis.
        await using var a = await EnvoyServer.StartAsync(Yaml, store: Store);
        await using var b = await EnvoyServer.StartAsync(Yaml, store: Store);
        var first = await a.CallAsync("live", [("user", "alice")]);
        Assert.Equal(1u, first.Statuses[0].LimitRemaining);
        Assert.InRange(first.Statuses[0].DurationUntilReset.ToTimeSpan(), TimeSpan.FromTicks(1), TimeSpan.FromDays(1));
        Assert.Equal(0u, (await b.CallAsync("live", [("user", "alice")])).Statuses[0].LimitRemaining);
        Assert.Equal(RateLimitResponse.Types.Code.OverLimit, (await a.CallAsync("live", [("user", "alice")])).OverallCode);
        Assert.Equal(RateLimitResponse.Types.Code.Ok, (await b.CallAsync("live", [("user", "bob")])).OverallCode);
    }

    public void Dispose() => _stores.Dispose();
}
