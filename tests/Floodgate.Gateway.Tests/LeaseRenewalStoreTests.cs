using System.Reflection;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Operations;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// Every store the gateway runs (its own wrappers included) renews leases itself rather than through the interface's
/// default, which renews nothing; and the switching store renews a lease on whichever store granted it.
/// </summary>
public sealed class LeaseRenewalStoreTests
{
    private static readonly Limit OnePermit = Limit.Concurrency(1, TimeSpan.FromSeconds(10));
    private static readonly RateLimitCheck Take = new(OnePermit, StoreKey.Create("svc", "stream"), 1, false);

    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-23T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    [Theory]
    [InlineData(typeof(MemoryStore))]
    [InlineData(typeof(RedisStore))]
    [InlineData(typeof(SwitchingStore))]
    [InlineData(typeof(InstrumentedStore))]
    public void The_store_forwards_or_implements_every_member_a_default_would_get_wrong(Type store)
    {
        var map = store.GetInterfaceMap(typeof(IRateLimitStore));
        foreach (var name in new[] { nameof(IRateLimitStore.RenewAsync), nameof(IRateLimitStore.DecideStagesAsync), nameof(IRateLimitStore.SettleAsync) })
        {
            var target = map.TargetMethods[Array.FindIndex(map.InterfaceMethods, m => m.Name == name)];
            Assert.True(target.DeclaringType == store, $"{store.Name} leaves {name} to the interface's default.");
        }
    }

    [Fact]
    public void Every_store_in_the_shipped_assemblies_is_listed_above()
    {
        var stores = new[] { typeof(MemoryStore).Assembly, typeof(RedisStore).Assembly, typeof(SwitchingStore).Assembly }
            .SelectMany(a => a.GetTypes())
            .Where(t => t.IsClass && !t.IsAbstract && typeof(IRateLimitStore).IsAssignableFrom(t))
            .Select(t => t.Name)
            .Order(StringComparer.Ordinal);
        Assert.Equal(["InstrumentedStore", "MemoryStore", "RedisStore", "SwitchingStore"], stores);
    }

    [Fact]
    public async Task A_lease_is_renewed_on_the_store_that_granted_it_while_a_replaced_store_retires()
    {
        var first = new MemoryStore(timeProvider: _time);
        var second = new MemoryStore(timeProvider: _time);
        using var store = new SwitchingStore(new InstrumentedStore(first, "memory"), "memory", null, _time);
        var old = await DecideAsync(store, Take);
        Assert.True(store.Switch(second, "memory", null, TimeSpan.FromSeconds(30)));
        var fresh = await DecideAsync(store, Take);

        // Eight seconds on, each lease is renewed where it lives: both outlive their first ten seconds.
        _time.Advance(TimeSpan.FromSeconds(8));
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(Take, old.LeaseId));
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(Take, fresh.LeaseId));
        _time.Advance(TimeSpan.FromSeconds(8));
        Assert.False((await DecideAsync(first, Take)).Outcome.IsAllowed);
        Assert.False((await DecideAsync(second, Take)).Outcome.IsAllowed);

        // Released, or never granted by either store: not held.
        await store.ReleaseAsync(Take, old.LeaseId);
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(Take, old.LeaseId));
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(Take, fresh.LeaseId + 1));

        // Once the replaced store is closed, only the store in force is asked.
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(0, store.Retiring);
        var later = await DecideAsync(store, Take);
        Assert.True(later.Committed);
        Assert.Equal(LeaseRenewal.Renewed, await store.RenewAsync(Take, later.LeaseId));
        Assert.Equal(LeaseRenewal.NotHeld, await store.RenewAsync(Take, fresh.LeaseId));
    }

    private static async Task<StoreOutcome> DecideAsync(IRateLimitStore store, RateLimitCheck check)
    {
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes);
        return outcomes[0];
    }
}
