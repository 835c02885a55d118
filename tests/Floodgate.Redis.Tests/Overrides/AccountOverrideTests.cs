using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

/// <summary>
/// Overrides keyed by an account (the request's <c>account</c> claim), on both override stores: the subject's override,
/// then its account's, then the plan claim, then the default plan.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class AccountOverrideTests(RedisFixture fixture)
{
    private static readonly RateLimitRule PerUser = new(
        "per-user",
        RateLimitTier.User,
        new Dictionary<string, Limit>
        {
            ["free"] = Limit.FixedWindow(Rate.Parse("3/h")),
            ["team"] = Limit.FixedWindow(Rate.Parse("6/h")),
            ["pro"] = Limit.FixedWindow(Rate.Parse("10/h")),
        },
        "free");

    [Theory]
    [InlineData("memory")]
    [InlineData("redis")]
    public async Task Precedence_is_the_subjects_override_then_its_accounts_then_the_plan_claim_then_the_default_plan(string kind)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero));
        await using var stores = await OverridesAsync(kind, time);
        var overrides = stores.Overrides;
        var engine = new RateLimitEngine(new RateLimitPolicy([PerUser]), new MemoryStore(null, time), time) { Overrides = overrides };

        await overrides.SetAsync(RateLimitOverride.ForAccount("acme", "team"));
        await overrides.SetAsync(new RateLimitOverride("carol", "pro"));

        // No override of its own: the account's plan (team, 6), over the default plan and over a plan claim.
        Assert.Equal(6, await AdmittedAsync(engine, "bob", "acme", null));
        Assert.Equal(6, await AdmittedAsync(engine, "dave", "acme", "pro"));

        // The subject's own override first, though its account has one.
        Assert.Equal(10, await AdmittedAsync(engine, "carol", "acme", null));

        // Another account, or none: the plan claim, then the default plan.
        Assert.Equal(10, await AdmittedAsync(engine, "erin", "globex", "pro"));
        Assert.Equal(3, await AdmittedAsync(engine, "frank", null, null));

        // An account's override never names a subject of the same name, nor the other way round.
        Assert.Equal(3, await AdmittedAsync(engine, "acme", null, null));
        Assert.False(overrides.TryFindAccount("carol", out _));
        Assert.True(overrides.TryFindAccount("acme", out var found));
        Assert.True(found.IsAccount);
        Assert.Equal("acme", found.Subject);

        // Read back as stored, listed with the subjects', and removed by its key.
        Assert.Equal("team", (await overrides.GetAsync(RateLimitOverride.AccountKey("acme")))?.Plan);
        Assert.Null(await overrides.GetAsync("acme"));
        var listed = await overrides.ListAsync(null, 10);
        Assert.Equal(["acme", "carol"], listed.Select(o => o.Subject));
        Assert.Equal([true, false], listed.Select(o => o.IsAccount));
        Assert.True(await overrides.RemoveAsync(RateLimitOverride.AccountKey("acme")));
        Assert.Equal(10, await AdmittedAsync(engine, "grace", "acme", "pro"));
        Assert.Equal(3, await AdmittedAsync(engine, "heidi", "acme", null));
    }

    [Theory]
    [InlineData("memory")]
    [InlineData("redis")]
    public async Task An_accounts_override_with_an_expiry_lapses_on_time(string kind)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero));
        await using var stores = await OverridesAsync(kind, time);
        await stores.Overrides.SetAsync(RateLimitOverride.ForAccount("acme", "pro", expiresAt: time.GetUtcNow().AddMinutes(5)));

        Assert.True(stores.Overrides.TryFindAccount("acme", out _));
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(stores.Overrides.TryFindAccount("acme", out _));
    }

    [Fact]
    public async Task No_account_claim_is_read_until_an_account_override_exists_on_any_replica()
    {
        var memory = new MemoryOverrideStore();
        await memory.SetAsync(new RateLimitOverride("alice", "pro"));
        Assert.False(memory.HasAccountOverrides);
        await memory.SetAsync(RateLimitOverride.ForAccount("acme", "pro"));
        Assert.True(memory.HasAccountOverrides);

        var prefix = "acct" + Guid.NewGuid().ToString("N")[..8];
        await using var connectionA = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using var connectionB = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        await using var a = new RedisOverrideStore(connectionA, prefix);
        await using var b = new RedisOverrideStore(connectionB, prefix);
        await Task.WhenAll(a.Ready, b.Ready).WaitAsync(TimeSpan.FromSeconds(10));
        await a.SetAsync(new RateLimitOverride("alice", "pro"));
        Assert.False(a.HasAccountOverrides);

        // Set on one replica, seen on the other by its mirror within a second.
        await a.SetAsync(RateLimitOverride.ForAccount("acme", "pro"));
        Assert.True(a.HasAccountOverrides);
        var seen = System.Diagnostics.Stopwatch.StartNew();
        while (!(b.HasAccountOverrides && b.TryFindAccount("acme", out _)) && seen.Elapsed < TimeSpan.FromSeconds(1))
        {
            await Task.Delay(10);
        }

        Assert.True(b.HasAccountOverrides && b.TryFindAccount("acme", out _), $"not seen after {seen.Elapsed}");
    }

    private async Task<Stores> OverridesAsync(string kind, TimeProvider time)
    {
        if (kind == "memory")
        {
            return new Stores(new MemoryOverrideStore(time), null);
        }

        var connection = await ConnectionMultiplexer.ConnectAsync(fixture.Server.Configuration);
        var overrides = new RedisOverrideStore(connection, "acct" + Guid.NewGuid().ToString("N")[..8], time);
        await overrides.Ready.WaitAsync(TimeSpan.FromSeconds(10));
        return new Stores(overrides, connection);
    }

    private static async Task<int> AdmittedAsync(RateLimitEngine engine, string subject, string? account, string? plan)
    {
        var claims = new Dictionary<string, string>(StringComparer.Ordinal);
        if (account is not null)
        {
            claims[RateLimitOverride.AccountClaim] = account;
        }

        var admitted = 0;
        for (var i = 0; i < 12; i++)
        {
            admitted += (await engine.EvaluateAsync(new RequestContext { Subject = subject, Plan = plan, Claims = claims })).IsAllowed ? 1 : 0;
        }

        return admitted;
    }

    private sealed record Stores(IOverrideStore Overrides, IConnectionMultiplexer? Connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (Overrides is RedisOverrideStore redis)
            {
                await redis.DisposeAsync();
            }

            if (Connection is not null)
            {
                await Connection.DisposeAsync();
            }
        }
    }
}
