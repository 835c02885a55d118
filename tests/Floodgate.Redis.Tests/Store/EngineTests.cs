using System.Net;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Redis.Tests;

/// <summary>The engine over the Redis store: tiers, atomic user rules, concurrency leases and a leased global limit.</summary>
public abstract class EngineTests(IServerFixture fixture)
{
    [Fact]
    public async Task The_engine_decides_tier_by_tier_on_redis()
    {
        await using var store = await TestStores.ConnectAsync(fixture.Server);
        var policy = new RateLimitPolicy(
        [
            new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(new Rate(100, 1, RateUnit.Minute))),
            new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(new Rate(5, 1, RateUnit.Minute))),
            new RateLimitRule("orders", RateLimitTier.User, Limit.FixedWindow(new Rate(3, 1, RateUnit.Hour))) { Key = [KeyPart.Subject, KeyPart.Route] },
            new RateLimitRule("search", RateLimitTier.Service, Limit.Concurrency(2)),
            new RateLimitRule("everything", RateLimitTier.Global, Limit.Gcra(new Rate(1000, 1, RateUnit.Second)).WithLeasedSlice(50)),
        ]);
        var engine = new RateLimitEngine(policy, store);
        var alice = new RequestContext { ClientIp = IPAddress.Parse("192.0.2.7"), Subject = "alice", Path = "/orders", RouteTemplate = "/orders" };

        var held = new List<RateLimitResult>();
        for (var i = 0; i < 2; i++)
        {
            var result = await engine.EvaluateAsync(alice);
            Assert.True(result.IsAllowed, result.Decision.ToString());
            Assert.True(result.HasLeases);
            held.Add(result);
        }

        // The concurrency permits are taken: the service tier rejects with 503, and the user tier was charged.
        var third = await engine.EvaluateAsync(alice);
        Assert.False(third.IsAllowed);
        Assert.True(third.IsCapacityRejection);
        Assert.Equal("search", third.Decision.Rule!.Name);

        foreach (var result in held)
        {
            await engine.ReleaseAsync(result);
        }

        // The orders rule (3/hour) is spent after three charged requests: alice's user tier is rejected as a whole.
        var fourth = await engine.EvaluateAsync(alice);
        Assert.False(fourth.IsAllowed);
        Assert.Equal("orders", fourth.Decision.Rule!.Name);
        Assert.False(fourth.IsCapacityRejection);
        Assert.True(fourth.Decision.RetryAfter > TimeSpan.Zero);

        // Bob is not affected.
        var bob = new RequestContext { ClientIp = IPAddress.Parse("192.0.2.8"), Subject = "bob", Path = "/orders", RouteTemplate = "/orders" };
        var forBob = await engine.EvaluateAsync(bob);
        Assert.True(forBob.IsAllowed);
        await engine.ReleaseAsync(forBob);
        Assert.Equal(0, store.Failures);
    }
}
