using Floodgate.Gateway.Hosting;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests;

public sealed class SwitchingStoreTests
{
    private static readonly Limit OnePermit = Limit.Concurrency(1, TimeSpan.FromMinutes(5));
    private static readonly RateLimitCheck Take = new(OnePermit, StoreKey.Create("svc", "slow"), 1, false);
    private static readonly RateLimitCheck Look = Take with { Cost = 0 };

    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-23T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task Decisions_go_to_the_store_in_force_and_a_lease_is_released_on_the_store_that_granted_it()
    {
        var first = new MemoryStore(timeProvider: _time);
        var second = new MemoryStore(timeProvider: _time);
        using var store = new SwitchingStore(first, "memory", null, _time);

        var old = await DecideAsync(store, Take);
        Assert.True(old.Outcome.IsAllowed);
        Assert.NotEqual(0, old.LeaseId);

        Assert.True(store.Switch(second, "memory", null, TimeSpan.FromSeconds(30)));
        Assert.Same(second, store.Current);

        // The new store starts without the old one's lease, and grants its own.
        var fresh = await DecideAsync(store, Take);
        Assert.True(fresh.Outcome.IsAllowed);
        Assert.Equal(0, (await DecideAsync(second, Look)).Outcome.Remaining);
        Assert.Equal(0, (await DecideAsync(first, Look)).Outcome.Remaining);

        // The old lease is freed in the old store, and the new store's lease is untouched.
        await store.ReleaseAsync(Take, old.LeaseId);
        Assert.Equal(1, (await DecideAsync(first, Look)).Outcome.Remaining);
        Assert.Equal(0, (await DecideAsync(second, Look)).Outcome.Remaining);

        await store.ReleaseAsync(Take, fresh.LeaseId);
        Assert.Equal(1, (await DecideAsync(second, Look)).Outcome.Remaining);
    }

    [Fact]
    public void A_replaced_store_is_closed_once_its_leases_can_no_longer_live()
    {
        var replaced = new Closable();
        using var store = new SwitchingStore(new MemoryStore(timeProvider: _time), "redis", replaced, _time);
        store.Switch(new MemoryStore(timeProvider: _time), "memory", null, TimeSpan.FromMinutes(5));
        Assert.Equal("memory", store.Kind);

        _time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        Assert.Equal(1, store.Retiring);
        Assert.Equal(0, replaced.Closed);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(0, store.Retiring);
        Assert.Equal(1, replaced.Closed);
    }

    [Fact]
    public void Disposing_closes_the_store_in_force_and_every_retiring_one_once()
    {
        var first = new Closable();
        var second = new Closable();
        var third = new Closable();
        var store = new SwitchingStore(new MemoryStore(timeProvider: _time), "redis", first, _time);
        store.Switch(new MemoryStore(timeProvider: _time), "redis", second, TimeSpan.FromMinutes(1));
        store.Switch(new MemoryStore(timeProvider: _time), "redis", third, TimeSpan.FromMinutes(1));
        Assert.Equal(2, store.Retiring);

        store.Dispose();
        store.Dispose();
        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal([1, 1, 1], new[] { first.Closed, second.Closed, third.Closed });

        // A reload that ends after the host stopped: its new store is closed at once, and nothing is left running.
        var late = new Closable();
        Assert.False(store.Switch(new MemoryStore(timeProvider: _time), "redis", late, TimeSpan.FromMinutes(1)));
        Assert.Equal(1, late.Closed);
        Assert.Equal(0, store.Retiring);
    }

    [Fact]
    public async Task A_retiring_store_that_fails_to_release_does_not_fail_the_release_on_the_store_in_force()
    {
        var current = new MemoryStore(timeProvider: _time);
        using var store = new SwitchingStore(new FailingStore(), "custom", null, _time);
        store.Switch(current, "memory", null, TimeSpan.FromMinutes(1));

        var lease = await DecideAsync(store, Take);
        Assert.Equal(0, (await DecideAsync(current, Look)).Outcome.Remaining);
        await store.ReleaseAsync(Take, lease.LeaseId);
        Assert.Equal(1, (await DecideAsync(current, Look)).Outcome.Remaining);
    }

    private static async Task<StoreOutcome> DecideAsync(IRateLimitStore store, RateLimitCheck check)
    {
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes);
        return outcomes[0];
    }

    private sealed class Closable : IDisposable
    {
        public int Closed { get; private set; }

        public void Dispose() => Closed++;
    }

    /// <summary>A store whose connection is gone: every call fails.</summary>
    private sealed class FailingStore : IRateLimitStore
    {
        public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            ValueTask.FromException(new InvalidOperationException("gone"));

        public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => false;

        public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            ValueTask.FromException(new InvalidOperationException("gone"));

        public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            ValueTask.FromException<LeaseRenewal>(new InvalidOperationException("gone"));
    }
}
