using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Stores;

/// <summary><see cref="MemoryStore.RenewAsync"/>: a renewed lease outlives its first timeout; one left alone, or gone, does not.</summary>
public sealed class LeaseRenewalTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _time = new(Start);

    private static RateLimitCheck Check(Limit limit, string value = "alice", long cost = 1) => new(limit, StoreKey.Create("streams", value), cost, false);

    private static StoreOutcome Decide(MemoryStore store, RateLimitCheck check)
    {
        var outcomes = new StoreOutcome[1];
        store.Decide([check], outcomes);
        return outcomes[0];
    }

    private static LeaseRenewal Renew(MemoryStore store, RateLimitCheck check, long leaseId) => Completed(store.RenewAsync(check, leaseId));

    /// <summary>The answer of a renewal that must have completed synchronously.</summary>
    private static LeaseRenewal Completed(ValueTask<LeaseRenewal> pending)
    {
        Assert.True(pending.IsCompletedSuccessfully);
        return pending.Result;
    }

    [Fact]
    public void A_lease_renewed_past_its_first_timeout_still_counts_and_one_left_alone_expires()
    {
        var store = new MemoryStore(timeProvider: _time);
        var check = Check(Limit.Concurrency(2, TimeSpan.FromSeconds(1)));
        var renewed = Decide(store, check);
        var abandoned = Decide(store, check);
        Assert.True(renewed.Committed && abandoned.Committed);
        Assert.False(Decide(store, check).Outcome.IsAllowed);

        // Three timeouts, renewed every 400 ms: the renewed lease holds its permit throughout, the other frees its own.
        for (var step = 0; step < 9; step++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(400));
            Assert.Equal(LeaseRenewal.Renewed, Renew(store, check, renewed.LeaseId));
        }

        var third = Decide(store, check);
        Assert.True(third.Committed);
        var full = Decide(store, check);
        Assert.False(full.Outcome.IsAllowed);
        Assert.Equal(0, full.Outcome.Remaining);

        // The renewed lease is the latest to expire: one timeout from its last renewal, which the reset shows.
        Assert.Equal(1_000_000, full.Outcome.ResetAfterMicroseconds);

        // Left alone from now on, it expires one timeout after its last renewal, and a renewal then does not bring it back.
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, check, renewed.LeaseId));
        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, check, abandoned.LeaseId));
        Assert.True(Decide(store, check).Committed);
        Assert.True(Decide(store, check).Committed);
        Assert.False(Decide(store, check).Outcome.IsAllowed);
    }

    [Fact]
    public async Task A_released_lease_is_not_renewed_and_its_permit_stays_free()
    {
        var store = new MemoryStore(timeProvider: _time);
        var check = Check(Limit.Concurrency(1, TimeSpan.FromSeconds(10)));
        var held = Decide(store, check);
        await store.ReleaseAsync(check, held.LeaseId);

        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, check, held.LeaseId));
        var next = Decide(store, check);
        Assert.True(next.Committed);

        // Neither an id the store never granted, nor a lease of another key, nor a check that takes no lease.
        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, check, next.LeaseId + 1));
        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, Check(check.Limit, "bob"), next.LeaseId));
        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, Check(Limit.Gcra(Rate.Parse("10/s"))), next.LeaseId));
        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, check, 0));
        Assert.Equal(LeaseRenewal.Renewed, Renew(store, check, next.LeaseId));
    }

    [Fact]
    public void A_renewal_never_shortens_a_lease()
    {
        var store = new MemoryStore(timeProvider: _time);
        var check = Check(Limit.Concurrency(1, TimeSpan.FromSeconds(10)));
        var held = Decide(store, check);

        // Renewed by a check whose timeout is shorter (a reload shortened the rule's): the lease keeps its 10 s.
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(LeaseRenewal.Renewed, Renew(store, Check(Limit.Concurrency(1, TimeSpan.FromSeconds(2))), held.LeaseId));
        var denied = Decide(store, check);
        Assert.Equal(9_000_000, denied.Outcome.ResetAfterMicroseconds);
        _time.Advance(TimeSpan.FromSeconds(8.5));
        Assert.False(Decide(store, check).Outcome.IsAllowed);
    }

    [Fact]
    public async Task Renewals_keep_the_earliest_and_latest_expiries_of_many_leases_exact()
    {
        // A model of which leases are held and until when, against what decisions read of the store: permits in flight
        // (remaining), the latest expiry (reset) and the earliest (a denial's retry, below the one second cap).
        var store = new MemoryStore(timeProvider: _time);
        const int Permits = 40;
        var timeout = TimeSpan.FromMilliseconds(900);
        var check = Check(Limit.Concurrency(Permits, timeout));
        var random = new Random(19);
        var held = new Dictionary<long, long>();
        long Now() => (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

        for (var step = 0; step < 400; step++)
        {
            _time.Advance(TimeSpan.FromMilliseconds(random.Next(0, 120)));
            var now = Now();
            foreach (var expired in held.Where(h => h.Value <= now).Select(h => h.Key).ToList())
            {
                held.Remove(expired);
            }

            // Take what is free now and then, renew a random part of what is held, release a few.
            while (held.Count < Permits && random.Next(3) == 0)
            {
                var taken = Decide(store, check);
                Assert.True(taken.Committed);
                held[taken.LeaseId] = now + (long)timeout.TotalMicroseconds;
            }

            foreach (var id in held.Keys.ToList())
            {
                switch (random.Next(6))
                {
                    case 0 or 1 or 2:
                        Assert.Equal(LeaseRenewal.Renewed, Renew(store, check, id));
                        held[id] = now + (long)timeout.TotalMicroseconds;
                        break;
                    case 3 when random.Next(4) == 0:
                        await store.ReleaseAsync(check, id);
                        held.Remove(id);
                        Assert.Equal(LeaseRenewal.NotHeld, Renew(store, check, id));
                        break;
                }
            }

            var read = Decide(store, check with { Cost = 0 });
            Assert.Equal(Permits - held.Count, read.Outcome.Remaining);
            Assert.Equal(held.Count == 0 ? 0 : held.Values.Max() - now, read.Outcome.ResetAfterMicroseconds);
            if (held.Count == Permits)
            {
                var denied = Decide(store, check);
                Assert.False(denied.Outcome.IsAllowed);
                Assert.Equal(Math.Max(1, held.Values.Min() - now), denied.Outcome.RetryAfterMicroseconds);
            }
        }
    }

    [Fact]
    public void A_store_that_predates_renewal_answers_not_supported()
    {
        IRateLimitStore store = new LegacyStore();
        Assert.Equal(LeaseRenewal.NotSupported, Completed(store.RenewAsync(Check(Limit.Concurrency(1)), 42)));
    }

    [Fact]
    public void Renewing_allocates_nothing()
    {
        var store = new MemoryStore(timeProvider: _time);
        var check = Check(Limit.Concurrency(1, TimeSpan.FromSeconds(10)));
        var held = Decide(store, check);
        Renew(store, check, held.LeaseId);
        long allocated = 0;
        for (var i = 0; i < 1000; i++)
        {
            // Each renewal moves the lease's expiry (the clock moved), and only the store's call is measured.
            _time.Advance(TimeSpan.FromMilliseconds(1));
            var before = GC.GetAllocatedBytesForCurrentThread();
            var pending = store.RenewAsync(check, held.LeaseId);
            allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(LeaseRenewal.Renewed, Completed(pending));
        }

        Assert.Equal(0, allocated);
    }

    /// <summary>A store written before renewal existed: the interface's default answers for it.</summary>
    private sealed class LegacyStore : IRateLimitStore
    {
        public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) => default;

        public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => true;

        public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) => default;
    }
}
