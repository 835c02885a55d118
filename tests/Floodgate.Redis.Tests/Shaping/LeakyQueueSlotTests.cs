using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>A leaky bucket queue shared by two stores on one redis-server: each slot is handed out once.</summary>
[Collection(RedisCollection.Name)]
public sealed class LeakyQueueSlotTests(RedisFixture fixture)
{
    [Fact]
    public async Task Two_replicas_deciding_at_once_never_hand_out_the_same_slot()
    {
        var start = new DateTimeOffset(2026, 3, 28, 20, 0, 0, TimeSpan.Zero);
        var clock = TestStores.Clock(start);
        // One key prefix: two replicas of one deployment.
        var prefix = "q" + Guid.NewGuid().ToString("N")[..10];
        await using var first = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false, clock, prefix);
        await using var second = await TestStores.ConnectAsync(fixture.Server, o => o.OverLimitCache = false, clock, prefix);
        var limit = Limit.LeakyBucketQueue(new Rate(10, 1, RateUnit.Second), TimeSpan.FromSeconds(5));
        var check = new RateLimitCheck(limit, StoreKey.Create("queue", Guid.NewGuid().ToString()), 1, false);
        var now = TestStores.Micros(start);

        // 100 decisions at one explicit now, half through each store, all in flight together.
        var decisions = Enumerable.Range(0, 100).Select(async i =>
        {
            var outcomes = new StoreOutcome[1];
            await (i % 2 == 0 ? first : second).DecideAsync(new[] { check }, outcomes, now);
            return outcomes[0];
        });
        var outcomes = await Task.WhenAll(decisions);

        Assert.DoesNotContain(outcomes, o => o.IsStoreFailure);
        var delays = outcomes.Where(o => o.Outcome.IsAllowed).Select(o => o.Outcome.DelayMicroseconds).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 50).Select(i => i * 100_000L), delays);
        Assert.All(outcomes.Where(o => !o.Outcome.IsAllowed), o => Assert.Equal(100_000, o.Outcome.RetryAfterMicroseconds));
    }
}
