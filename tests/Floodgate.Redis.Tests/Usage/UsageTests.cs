using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;
using Floodgate.Usage;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Redis.Tests;

/// <summary>Usage read for a subject equals what the limiter then decides, for every algorithm, on both stores, and consumes nothing.</summary>
[Collection(RedisCollection.Name)]
public sealed class UsageTests(RedisFixture fixture)
{
    public static TheoryData<string, LimitAlgorithm, bool> Cases()
    {
        var data = new TheoryData<string, LimitAlgorithm, bool>();
        foreach (var store in new[] { "memory", "redis" })
        {
            foreach (var algorithm in Enum.GetValues<LimitAlgorithm>())
            {
                data.Add(store, algorithm, false);
            }

            data.Add(store, LimitAlgorithm.Quota, true);
        }

        return data;
    }

    private static Limit Make(LimitAlgorithm algorithm, bool calendar)
    {
        // Slow rates: nothing refills while a test against the real clock (Redis's) runs.
        var rate = new Rate(10, 1, calendar ? RateUnit.Day : RateUnit.Hour);
        return algorithm switch
        {
            LimitAlgorithm.Gcra => Limit.Gcra(rate),
            LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
            LimitAlgorithm.FixedWindow => Limit.FixedWindow(rate),
            LimitAlgorithm.Quota => Limit.Quota(rate, calendar ? QuotaCalendar.Utc : null),
            _ => Limit.Concurrency(10),
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Usage_equals_what_the_limiter_decides_next_and_reading_it_consumes_nothing(string kind, LimitAlgorithm algorithm, bool calendar)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 4, 10, 20, 0, TimeSpan.Zero));
        await using var redis = kind == "redis" ? await TestStores.ConnectAsync(fixture.Server) : null;
        IRateLimitStore store = redis is null ? new MemoryStore(null, time) : redis;
        var rule = new RateLimitRule("per-user", RateLimitTier.User, Make(algorithm, calendar));
        var other = new RateLimitRule("per-ip", RateLimitTier.Edge, Limit.FixedWindow(new Rate(1000, 1, RateUnit.Hour)));
        var engine = new RateLimitEngine(new RateLimitPolicy([other, rule]), store, time);
        var alice = new RequestContext { Subject = "alice", ClientIp = System.Net.IPAddress.Loopback };
        var held = new List<RateLimitResult>();
        for (var i = 0; i < 4; i++)
        {
            var result = await engine.EvaluateAsync(alice);
            Assert.True(result.IsAllowed);
            held.Add(result);
        }

        var first = await UsageReader.ReadAsync(engine, "alice", null, time);
        var second = await UsageReader.ReadAsync(engine, "alice", null, time);
        var usage = Assert.Single(first);
        Assert.Equal("per-user", usage.Rule.Name);
        Assert.Equal(4, usage.Used);
        Assert.Equal(6, usage.Remaining);
        Assert.Equal(10, usage.Capacity);
        Assert.False(usage.IsStoreFailure);
        Assert.Equal(usage.Remaining, Assert.Single(second).Remaining);
        Assert.True(usage.ResetAfter > TimeSpan.Zero);
        if (algorithm == LimitAlgorithm.Quota)
        {
            Assert.NotNull(usage.PeriodStart);
            Assert.NotNull(usage.PeriodEnd);
            Assert.True(usage.PeriodEnd > usage.PeriodStart);
            if (calendar)
            {
                Assert.Equal(new DateTimeOffset(2026, 3, 4, 0, 0, 0, TimeSpan.Zero), usage.PeriodStart);
                Assert.Equal(new DateTimeOffset(2026, 3, 5, 0, 0, 0, TimeSpan.Zero), usage.PeriodEnd);
            }
        }

        // Exactly the remaining is admitted next.
        var admitted = 0;
        for (var i = 0; i < 10; i++)
        {
            var result = await engine.EvaluateAsync(alice);
            if (result.IsAllowed)
            {
                admitted++;
                held.Add(result);
            }
        }

        Assert.Equal(usage.Remaining, admitted);
        var spent = Assert.Single(await UsageReader.ReadAsync(engine, "alice", null, time));
        Assert.Equal(0, spent.Remaining);
        Assert.Equal(10, spent.Used);
        foreach (var result in held)
        {
            await engine.ReleaseAsync(result);
        }
    }

    [Fact]
    public async Task Usage_follows_the_subjects_override_and_plan_and_leaves_out_rules_a_request_alone_would_key()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 4, 10, 20, 0, TimeSpan.Zero));
        var overrides = new MemoryOverrideStore(time);
        var plans = new Dictionary<string, Limit> { ["free"] = Limit.FixedWindow(new Rate(5, 1, RateUnit.Hour)), ["pro"] = Limit.FixedWindow(new Rate(50, 1, RateUnit.Hour)) };
        var engine = new RateLimitEngine(
            new RateLimitPolicy(
            [
                new RateLimitRule("per-user", RateLimitTier.User, plans, "free"),
                new RateLimitRule("per-header", RateLimitTier.User, Limit.FixedWindow(new Rate(5, 1, RateUnit.Hour))) { Key = [KeyPart.Subject, KeyPart.Parse("header:x-tenant")] },
                new RateLimitRule("orders", RateLimitTier.User, Limit.FixedWindow(new Rate(7, 1, RateUnit.Hour))) { Key = [KeyPart.Subject, KeyPart.Route], Match = new RuleMatch { Route = new RouteTemplate("/orders") } },
            ]),
            new MemoryStore(null, time),
            time)
        { Overrides = overrides };

        var usage = await UsageReader.ReadAsync(engine, "bob", null, time);
        Assert.Equal(["per-user", "orders"], usage.Select(u => u.Rule.Name));
        Assert.Equal(5, usage[0].Remaining);
        Assert.Equal(50, (await UsageReader.ReadAsync(engine, "bob", "pro", time))[0].Remaining);
        await overrides.SetAsync(new RateLimitOverride("bob", "pro", new Dictionary<string, Rate> { ["orders"] = new(9, 1, RateUnit.Hour) }));
        usage = await UsageReader.ReadAsync(engine, "bob", "free", time);
        Assert.Equal(50, usage[0].Remaining);
        Assert.Equal(9, usage[1].Remaining);
    }
}
