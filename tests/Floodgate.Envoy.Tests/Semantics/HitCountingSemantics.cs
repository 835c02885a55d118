using Envoy.Service.Ratelimit.V3;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Floodgate.Envoy.Tests;

/// <summary>
/// Which hits are counted (EnvoyRateLimitOptions.HitCounting), case by case against the reference's fixed cache
/// (src/redis/fixed_cache_impl.go): by default every hit is an INCRBY, over the limit or not; with
/// STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT only the descriptors that go over are counted once one does. Run on every store.
/// </summary>
public abstract class HitCountingSemantics
{
    /// <summary>Creates the store under test on the server's clock.</summary>
    protected abstract IRateLimitStore CreateStore(FakeTimeProvider time);

    private async Task<EnvoyServer> Start(EnvoyHitCounting counting = EnvoyHitCounting.All)
    {
        var server = await EnvoyServer.StartAsync(TestConfig.Yaml, o => o.HitCounting = counting, CreateStore);
        server.Time.Advance(TimeSpan.FromSeconds(10));
        return server;
    }

    private static RateLimitRequest Hits(uint? hits, params (string, string)[][] descriptors)
    {
        var request = EnvoyServer.Request("test", descriptors);
        foreach (var descriptor in request.Descriptors)
        {
            descriptor.HitsAddend = hits;
        }

        return request;
    }

    private static (string, string)[] D(params (string, string)[] entries) => entries;

    [Fact]
    public void Every_hit_is_counted_by_default()
    {
        Assert.Equal(EnvoyHitCounting.All, new EnvoyRateLimitOptions().HitCounting);
    }

    [Fact]
    public async Task A_check_of_zero_hits_after_an_overshoot_is_over_the_limit_until_the_window_ends()
    {
        // The token budget of docs/envoy.md: a check at the request's start (hits_addend 0), the real cost added when
        // the response ends (apply_on_stream_done). 3 a minute, 50 s left in the window.
        await using var server = await Start();
        var ip = D(("remote_address", "1.2.3.4"));
        var check = await server.CallAsync(Hits(0, ip));
        Assert.Equal(Code.Ok, check.OverallCode);
        Assert.Equal(3u, check.Statuses[0].LimitRemaining);

        var charge = await server.CallAsync(Hits(5, ip));
        Assert.Equal(Code.OverLimit, charge.OverallCode);
        Assert.Equal(0u, charge.Statuses[0].LimitRemaining);

        // INCRBY 0 reads 5 > 3: over the limit, as envoyproxy/ratelimit answers.
        var after = await server.CallAsync(Hits(0, ip));
        Assert.Equal(Code.OverLimit, after.OverallCode);
        Assert.Equal(Code.OverLimit, after.Statuses[0].Code);
        Assert.Equal(0u, after.Statuses[0].LimitRemaining);
        Assert.Equal(new Google.Protobuf.WellKnownTypes.Duration { Seconds = 50 }, after.Statuses[0].DurationUntilReset);

        server.Time.Advance(TimeSpan.FromSeconds(49));
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(0, ip))).OverallCode);
        server.Time.Advance(TimeSpan.FromSeconds(1));
        var next = await server.CallAsync(Hits(0, ip));
        Assert.Equal(Code.Ok, next.OverallCode);
        Assert.Equal(3u, next.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task A_check_at_exactly_the_limit_is_ok_and_a_counted_hit_past_it_stays_counted()
    {
        await using var server = await Start();
        var ip = D(("remote_address", "2.2.2.2"));
        Assert.Equal(Code.Ok, (await server.CallAsync(Hits(3, ip))).OverallCode);

        // INCRBY 0 reads 3, not over 3: OK with nothing left.
        var atLimit = await server.CallAsync(Hits(0, ip));
        Assert.Equal(Code.Ok, atLimit.OverallCode);
        Assert.Equal(0u, atLimit.Statuses[0].LimitRemaining);

        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(1, ip))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(0, ip))).OverallCode);
    }

    [Fact]
    public async Task A_token_bucket_charged_past_its_burst_is_over_the_limit_until_the_overdraft_refills()
    {
        // gcra 10 a second, burst 2: 5 charged at once owe 3 tokens, 300 ms.
        await using var server = await Start();
        var key = D(("gcra", "budget"));
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(5, key))).OverallCode);
        server.Time.Advance(TimeSpan.FromMilliseconds(299));
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(0, key))).OverallCode);
        server.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(Code.Ok, (await server.CallAsync(Hits(0, key))).OverallCode);
    }

    [Fact]
    public async Task Repeated_descriptors_are_each_counted_even_past_the_limit()
    {
        await using var server = await Start();
        var ip = D(("remote_address", "3.3.3.3"));
        var response = await server.CallAsync(Hits(2, ip, ip));
        Assert.Equal([Code.Ok, Code.OverLimit], response.Statuses.Select(s => s.Code));
        Assert.Equal([1u, 0u], response.Statuses.Select(s => s.LimitRemaining));

        // 4 counted: the counter is past 3.
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(0, ip))).OverallCode);
    }

    [Fact]
    public async Task Within_limit_counting_never_counts_a_hit_over_the_limit()
    {
        await using var server = await Start(EnvoyHitCounting.WithinLimit);
        var ip = D(("remote_address", "1.2.3.4"));
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(5, ip))).OverallCode);
        var after = await server.CallAsync(Hits(0, ip));
        Assert.Equal(Code.Ok, after.OverallCode);
        Assert.Equal(3u, after.Statuses[0].LimitRemaining);
        Assert.Equal(Code.Ok, (await server.CallAsync(Hits(3, ip))).OverallCode);
    }

    [Fact]
    public async Task Stop_when_over_limit_counts_only_the_descriptor_that_goes_over()
    {
        // 10.0.0.1: 1 a minute; 5.5.5.5: 3 a minute.
        await using var server = await Start(EnvoyHitCounting.StopWhenOverLimit);
        var tight = D(("remote_address", "10.0.0.1"));
        var loose = D(("remote_address", "5.5.5.5"));

        // None goes over: both counted.
        var first = await server.CallAsync(Hits(null, tight, loose));
        Assert.Equal(Code.Ok, first.OverallCode);
        Assert.Equal([0u, 2u], first.Statuses.Select(s => s.LimitRemaining));

        // 10.0.0.1 goes over: it is counted, 5.5.5.5 is not, and is told what remained.
        var second = await server.CallAsync(Hits(null, tight, loose));
        Assert.Equal(Code.OverLimit, second.OverallCode);
        Assert.Equal([Code.OverLimit, Code.Ok], second.Statuses.Select(s => s.Code));
        Assert.Equal([0u, 2u], second.Statuses.Select(s => s.LimitRemaining));

        // 5.5.5.5 still has 2; 10.0.0.1 was counted past its limit (2 > 1), so even a check of it is over.
        Assert.Equal(1u, (await server.CallAsync(Hits(null, loose))).Statuses[0].LimitRemaining);
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(0, tight))).OverallCode);
    }

    [Fact]
    public async Task Stop_when_over_limit_is_stopped_by_a_shadow_rule_going_over_as_in_the_reference()
    {
        await using var server = await Start(EnvoyHitCounting.StopWhenOverLimit);
        var shadow = D(("shadow", "s"));
        var ip = D(("remote_address", "6.6.6.6"));
        Assert.Equal(Code.Ok, (await server.CallAsync(Hits(null, shadow, ip))).OverallCode);

        // The shadow rule (1 a minute) goes over: the request stays OK, but 6.6.6.6 is not counted.
        var second = await server.CallAsync(Hits(null, shadow, ip));
        Assert.Equal(Code.Ok, second.OverallCode);
        Assert.Equal(2u, second.Statuses[1].LimitRemaining);
        Assert.Equal(1u, (await server.CallAsync(Hits(null, ip))).Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task Stop_when_over_limit_with_one_descriptor_counts_as_every_hit_does()
    {
        await using var server = await Start(EnvoyHitCounting.StopWhenOverLimit);
        var ip = D(("remote_address", "7.7.7.7"));
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(5, ip))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync(Hits(0, ip))).OverallCode);
    }

    [Fact]
    public async Task Stop_when_over_limit_counts_a_check_of_an_overshot_key_as_going_over()
    {
        // 10.0.0.1 is past its limit; a check of it (0 hits) goes over, so 5.5.5.5 is not counted.
        await using var server = await Start(EnvoyHitCounting.StopWhenOverLimit);
        var tight = D(("remote_address", "10.0.0.1"));
        var loose = D(("remote_address", "5.5.5.5"));
        await server.CallAsync(Hits(2, tight));
        var request = Hits(null, tight, loose);
        request.Descriptors[0].HitsAddend = 0;
        var response = await server.CallAsync(request);
        Assert.Equal([Code.OverLimit, Code.Ok], response.Statuses.Select(s => s.Code));
        Assert.Equal(3u, response.Statuses[1].LimitRemaining);
        Assert.Equal(2u, (await server.CallAsync(Hits(null, loose))).Statuses[0].LimitRemaining);
    }
}

/// <summary>Hit counting on the in-memory store.</summary>
public sealed class MemoryStoreHitCountingTests : HitCountingSemantics
{
    protected override IRateLimitStore CreateStore(FakeTimeProvider time) => new MemoryStore(null, time);
}

/// <summary>Hit counting on a real redis-server, at the fake clock's time.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisHitCountingTests(RedisFixture redis) : HitCountingSemantics, IDisposable
{
    private readonly FakeClockRedisStores _stores = new(redis.Server, "h");

    protected override IRateLimitStore CreateStore(FakeTimeProvider time) => _stores.Create(time);

    public void Dispose() => _stores.Dispose();
}
