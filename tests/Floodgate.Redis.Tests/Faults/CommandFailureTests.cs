using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class CommandFailureTests(RedisFixture fixture)
{
    [Theory]
    [InlineData(StoreFailureMode.Open)]
    [InlineData(StoreFailureMode.Closed)]
    public async Task A_disabled_EVALSHA_is_answered_by_the_failure_mode_without_throwing(StoreFailureMode mode)
    {
        var configuration = ConfigurationOptions.Parse(fixture.Server.Configuration);
        configuration.CommandMap = CommandMap.Create(new HashSet<string> { "EVALSHA" }, available: false);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var options = new RedisStoreOptions
        {
            KeyPrefix = "cf" + Guid.NewGuid().ToString("N")[..10],
            Timeout = TimeSpan.FromSeconds(2),
            FailureMode = mode,
            BreakerFailureThreshold = 1000,
        };
        var store = new RedisStore(connection, options);
        var gcra = Limit.Gcra(new Rate(10, 1, RateUnit.Second));
        var window = Limit.FixedWindow(new Rate(5, 1, RateUnit.Minute));
        var leased = Limit.Gcra(new Rate(1000, 1, RateUnit.Second)).WithLeasedSlice(10);
        var checks = new[]
        {
            new RateLimitCheck(gcra, StoreKey.Create("a", "alice"), 1, false),
            new RateLimitCheck(window, StoreKey.Create("b", "alice"), 1, false),
            new RateLimitCheck(gcra, StoreKey.Create("a", "bob"), 1, false),
            new RateLimitCheck(leased, StoreKey.Create("l", "carol"), 1, false),
        };

        for (var round = 0; round < 3; round++)
        {
            var outcomes = await store.DecideAsync(checks);
            Assert.Equal(4, outcomes.Length);
            foreach (var outcome in outcomes)
            {
                Assert.True(outcome.IsStoreFailure);
                Assert.False(outcome.Committed);
                Assert.Equal(mode == StoreFailureMode.Open, outcome.Outcome.IsAllowed);
            }
        }

        // Each round sent one call for the three identities (the leased one acquiring its slice again, not stuck), and one
        // failure was counted for it.
        Assert.Equal(3, store.Failures);
        Assert.Equal(3, store.RoundTrips);
    }
}
