using System.Threading.RateLimiting;
using Floodgate.Limits;
using Floodgate.RateLimiting;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.RateLimiting;

public sealed class AdapterTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 15, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void Failed_leases_carry_retry_after_and_a_reason()
    {
        using var limiter = new FloodgateRateLimiter(new MemoryStore(timeProvider: _time), Limit.Gcra(Rate.Parse("2/s")));
        using var a = limiter.AttemptAcquire();
        using var b = limiter.AttemptAcquire();
        using var c = limiter.AttemptAcquire();
        Assert.True(a.IsAcquired && b.IsAcquired);
        Assert.False(c.IsAcquired);
        Assert.True(c.TryGetMetadata(MetadataName.RetryAfter, out var retry));
        Assert.Equal(TimeSpan.FromMilliseconds(500), retry);
        Assert.True(c.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
        Assert.Contains("gcra 2/s", reason, StringComparison.Ordinal);
        Assert.Contains(MetadataName.RetryAfter.Name, c.MetadataNames);
        Assert.Empty(a.MetadataNames);

        var stats = limiter.GetStatistics()!;
        Assert.Equal(2, stats.TotalSuccessfulLeases);
        Assert.Equal(1, stats.TotalFailedLeases);
        Assert.Equal(0, stats.CurrentAvailablePermits);

        _time.Advance(TimeSpan.FromMilliseconds(500));
        using var d = limiter.AttemptAcquire();
        Assert.True(d.IsAcquired);
    }

    [Fact]
    public void A_permit_count_beyond_the_limit_has_no_retry_after()
    {
        using var limiter = new FloodgateRateLimiter(new MemoryStore(timeProvider: _time), Limit.FixedWindow(Rate.Parse("5/s")));
        using var lease = limiter.AttemptAcquire(6);
        Assert.False(lease.IsAcquired);
        Assert.False(lease.TryGetMetadata(MetadataName.RetryAfter, out _));
        using var probe = limiter.AttemptAcquire(0);
        Assert.True(probe.IsAcquired);
        Assert.Equal(5, limiter.GetStatistics()!.CurrentAvailablePermits);
    }

    [Fact]
    public async Task Zero_permits_are_acquired_only_while_a_permit_is_available()
    {
        // As with the built-in limiters, 0 permits asks "is at least one available?" and consumes nothing.
        using var limiter = new FloodgateRateLimiter(new MemoryStore(timeProvider: _time), Limit.FixedWindow(Rate.Parse("2/h")));
        using (var free = limiter.AttemptAcquire(0))
        {
            Assert.True(free.IsAcquired);
        }

        Assert.Equal(2, limiter.GetStatistics()!.CurrentAvailablePermits);
        using var a = limiter.AttemptAcquire(2);
        Assert.True(a.IsAcquired);
        using var none = limiter.AttemptAcquire(0);
        Assert.False(none.IsAcquired);
        Assert.True(none.TryGetMetadata(MetadataName.RetryAfter, out var retry));
        Assert.Equal(TimeSpan.FromHours(1), retry);
        using var noneAsync = await limiter.AcquireAsync(0);
        Assert.False(noneAsync.IsAcquired);

        // A concurrency limit: 0 permits takes no lease, and is refused while the one permit is held.
        using var concurrency = new FloodgateRateLimiter(new MemoryStore(timeProvider: _time), Limit.Concurrency(1), "c");
        using (var probe = concurrency.AttemptAcquire(0))
        {
            Assert.True(probe.IsAcquired);
        }

        var held = concurrency.AttemptAcquire(1);
        Assert.True(held.IsAcquired);
        using (var probe = concurrency.AttemptAcquire(0))
        {
            Assert.False(probe.IsAcquired);
        }

        held.Dispose();
        using var again = concurrency.AttemptAcquire(1);
        Assert.True(again.IsAcquired);

        // A partition: a permit costs the partition's cost, here 2 of 3.
        using var partitioned = new FloodgatePartitionedRateLimiter<string>(
            new MemoryStore(timeProvider: _time),
            user => new FloodgatePartition(user, Limit.FixedWindow(Rate.Parse("3/h")), Cost: 2));
        using (var probe = partitioned.AttemptAcquire("alice", 0))
        {
            Assert.True(probe.IsAcquired);
        }

        using var spent = partitioned.AttemptAcquire("alice", 1);
        Assert.True(spent.IsAcquired);
        using var left = partitioned.AttemptAcquire("alice", 0);
        Assert.False(left.IsAcquired);
        Assert.Equal(1, partitioned.GetStatistics("alice")!.CurrentAvailablePermits);
    }

    [Fact]
    public async Task Disposing_a_concurrency_lease_releases_its_permit()
    {
        using var limiter = new FloodgateRateLimiter(new MemoryStore(timeProvider: _time), Limit.Concurrency(1));
        var first = await limiter.AcquireAsync();
        Assert.True(first.IsAcquired);
        using (var second = limiter.AttemptAcquire())
        {
            Assert.False(second.IsAcquired);
        }

        first.Dispose();
        first.Dispose();
        using var third = limiter.AttemptAcquire();
        Assert.True(third.IsAcquired);
        using var fourth = limiter.AttemptAcquire();
        Assert.False(fourth.IsAcquired);
    }

    [Fact]
    public async Task Attempt_acquire_never_waits_for_a_remote_store()
    {
        var store = new RoundTripStore(new MemoryStore(timeProvider: _time));
        using var limiter = new FloodgateRateLimiter(store, Limit.FixedWindow(Rate.Parse("1/s")));
        using var attempt = limiter.AttemptAcquire();
        Assert.False(attempt.IsAcquired);
        Assert.True(attempt.TryGetMetadata(MetadataName.ReasonPhrase, out var reason));
        Assert.Contains("AcquireAsync", (string)reason!, StringComparison.Ordinal);

        // The attempt consumed nothing: the one permit is still there.
        using var acquired = await limiter.AcquireAsync();
        Assert.True(acquired.IsAcquired);
        using var over = await limiter.AcquireAsync();
        Assert.False(over.IsAcquired);
        Assert.Equal(2, store.RoundTrips);
    }

    [Fact]
    public async Task Partitions_are_counted_apart()
    {
        using var limiter = new FloodgatePartitionedRateLimiter<string>(
            new MemoryStore(timeProvider: _time),
            user => user == "admin" ? FloodgatePartition.NoLimit : new FloodgatePartition(user, Limit.FixedWindow(Rate.Parse("1/min"))));
        Assert.True(limiter.AttemptAcquire("alice").IsAcquired);
        Assert.False(limiter.AttemptAcquire("alice").IsAcquired);
        Assert.True((await limiter.AcquireAsync("bob")).IsAcquired);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(limiter.AttemptAcquire("admin").IsAcquired);
        }

        Assert.Equal(0, limiter.GetStatistics("alice")!.CurrentAvailablePermits);
        Assert.Null(limiter.GetStatistics("admin"));
        limiter.Dispose();
        Assert.Throws<ObjectDisposedException>(() => limiter.AttemptAcquire("alice"));
    }

    /// <summary>A store whose every decision needs a round trip, as a remote store's does.</summary>
    private sealed class RoundTripStore(MemoryStore inner) : DelegatingStore<MemoryStore>(inner)
    {
        public int RoundTrips { get; private set; }

        public override async ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            RoundTrips++;
            Inner.Decide(checks.Span, outcomes.Span);
        }

        public override async ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            RoundTrips++;
            return await Inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);
        }

        public override bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => false;
    }
}
