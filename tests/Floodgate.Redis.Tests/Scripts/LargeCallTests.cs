using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// A call with more keys, and a longer answer, than decide.lua hands to <c>unpack</c> at once (UNPACK_MAX, 7,000: Lua
/// 5.1's C stack, Redis's, holds 8,000 values; Garnet's Lua 5.4 more): its MGET goes in parts and its answer is built
/// without <c>unpack</c>. Runs on every server kind (Servers.cs).
/// </summary>
public abstract class LargeCallTests(IServerFixture fixture)
{
    [Fact]
    public async Task A_call_of_more_keys_than_unpack_takes_is_decided_whole()
    {
        const int Identities = 7_500;
        await using var store = await TestStores.ConnectAsync(fixture.Server, o =>
        {
            o.OverLimitCache = false;
            o.Timeout = TimeSpan.FromSeconds(20);
        });
        // A rolling quota: its period starts at the first decision, so no boundary passes during the test.
        var limit = Limit.Quota(new Rate(2, 1, RateUnit.Hour), null);
        var checks = Enumerable.Range(0, Identities).Select(i => new RateLimitCheck(limit, StoreKey.Create("large", "user" + i), 1, false)).ToArray();

        // Every identity spends its two, in one call each time: 7,500 keys, 37,503 values answered.
        for (var round = 0; round < 3; round++)
        {
            var outcomes = await store.DecideAsync(checks);
            Assert.All(outcomes, o => Assert.False(o.IsStoreFailure));
            Assert.All(outcomes, o => Assert.Equal(round < 2, o.Committed));
            Assert.All(outcomes, o => Assert.Equal(round < 2 ? 1 - round : 0, o.Outcome.Remaining));
        }

        Assert.Equal(3, store.RoundTrips);
        Assert.Equal(0, store.Failures);
    }
}
