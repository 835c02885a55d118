using Floodgate.Algorithms;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

public abstract class ClockTests(IServerFixture fixture)
{
    [Fact]
    public async Task Decisions_use_the_server_clock_even_when_this_replica_is_a_day_off()
    {
        // This replica's clock is two days behind: the calendar periods it computes do not contain the server's now,
        // so the script asks again with the server's time and the quota counts in the server's day.
        var skewed = TestStores.Clock(DateTimeOffset.UtcNow.AddDays(-2));
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: skewed);
        var limit = Limit.Quota(new Rate(5, 1, RateUnit.Day), QuotaCalendar.Utc);
        var check = new RateLimitCheck(limit, StoreKey.Create("daily", "alice"), 1, false);
        var outcome = await store.DecideOneAsync(check);
        Assert.False(outcome.IsStoreFailure);
        Assert.True(outcome.Committed);
        Assert.Equal(4, outcome.Outcome.Remaining);

        var now = DateTimeOffset.UtcNow;
        var midnight = new DateTimeOffset(now.Date.AddDays(1), TimeSpan.Zero);
        var reset = TimeSpan.FromMicroseconds(outcome.Outcome.ResetAfterMicroseconds);
        Assert.InRange(reset, midnight - now - TimeSpan.FromSeconds(30), midnight - now + TimeSpan.FromSeconds(30));
        Assert.Equal(0, store.Mismatches);
    }

    [Fact]
    public async Task Gcra_takes_the_time_from_the_server()
    {
        var skewed = TestStores.Clock(DateTimeOffset.UtcNow.AddHours(-5));
        await using var store = await TestStores.ConnectAsync(fixture.Server, time: skewed);
        var check = new RateLimitCheck(Limit.Gcra(new Rate(1, 1, RateUnit.Hour)), StoreKey.Create("tat", "alice"), 1, false);
        Assert.True((await store.DecideOneAsync(check)).Committed);
        var denied = await store.DecideOneAsync(check with { Cost = 0 });
        Assert.Equal(0, denied.Outcome.Remaining);
        Assert.InRange(denied.Outcome.ResetAfterMicroseconds, 3_590_000_000, 3_600_000_000);
    }

    [Fact]
    public void The_over_limit_cache_is_bounded()
    {
        var cache = new OverLimitCache(8);
        var limit = Limit.Gcra(new Rate(1, 1, RateUnit.Hour));
        var denied = new LimitOutcome(false, 0, 3_600_000_000, 3_600_000_000);
        for (var i = 0; i < 100; i++)
        {
            var check = new RateLimitCheck(limit, StoreKey.Create("r", "k" + i), 1, false);
            cache.Observe(check, new LimitState(7_200_000_000, 0, 0), 0, 0, denied, false);
        }

        Assert.Equal(8, cache.Count);

        // Expired entries make room.
        var late = new RateLimitCheck(limit, StoreKey.Create("r", "late"), 1, false);
        cache.Observe(late, new LimitState(7_200_000_000 + 4_000_000_000, 0, 0), 4_000_000_000, 4_000_000_000, denied, false);
        Assert.Equal(1, cache.Count);
        Assert.True(cache.TryDeny(late, 4_000_000_001, out var outcome));
        Assert.False(outcome.IsAllowed);
    }
}

public sealed class CircuitBreakerTests
{
    [Fact]
    public void The_breaker_opens_after_the_threshold_probes_once_and_closes_on_success()
    {
        var breaker = new CircuitBreaker(3, 1_000);
        Assert.False(breaker.OnFailure(0));
        Assert.False(breaker.OnFailure(0));
        Assert.True(breaker.TryEnter(0));
        Assert.True(breaker.OnFailure(0));
        Assert.False(breaker.TryEnter(500));
        Assert.Equal(500, breaker.RetryAfter(500));

        // One probe when due; others wait for it.
        Assert.True(breaker.TryEnter(1_000));
        Assert.False(breaker.TryEnter(1_001));

        // A failed probe opens the breaker again at once.
        Assert.True(breaker.OnFailure(1_002));
        Assert.False(breaker.TryEnter(1_500));

        // A probe whose caller never reports back does not wedge the breaker.
        Assert.True(breaker.TryEnter(2_002));
        Assert.False(breaker.TryEnter(2_500));
        Assert.True(breaker.TryEnter(3_002));
        breaker.OnSuccess();
        Assert.True(breaker.IsClosed);
        Assert.True(breaker.TryEnter(3_003));
    }
}
