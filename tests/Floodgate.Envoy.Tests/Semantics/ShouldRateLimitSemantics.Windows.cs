using System.Diagnostics.Metrics;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Stores;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using Unit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Floodgate.Envoy.Tests;

/// <summary>The semantics of time: units, resets and algorithms; metrics, concurrency and health.</summary>
public abstract partial class ShouldRateLimitSemantics
{
    [Theory]
    [InlineData("hour", Unit.Hour, 3600)]
    [InlineData("day", Unit.Day, 86400)]
    [InlineData("week", Unit.Week, 7 * 86400)]
    [InlineData("month", Unit.Month, 30 * 86400)]
    [InlineData("year", Unit.Year, 365 * 86400)]
    public async Task Every_unit_resets_at_its_epoch_aligned_window(string key, Unit unit, long seconds)
    {
        await using var server = await Start();
        var response = await server.CallAsync("test", D((key, "x")));
        Assert.Equal(unit, response.Statuses[0].CurrentLimit.Unit);
        Assert.Equal(4u, response.Statuses[0].LimitRemaining);
        var now = server.Time.GetUtcNow().ToUnixTimeSeconds();
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(seconds - (now % seconds))), response.Statuses[0].DurationUntilReset);
    }

    [Fact]
    public async Task Duration_until_reset_is_rounded_up_to_whole_seconds()
    {
        await using var server = await Start();
        server.Time.Advance(TimeSpan.FromMilliseconds(700));
        var response = await server.CallAsync("test", D(("remote_address", "4.4.4.4")), D(("gcra", "y")));
        Assert.Equal(new Duration { Seconds = 50 }, response.Statuses[0].DurationUntilReset);
        Assert.Equal(new Duration { Seconds = 1 }, response.Statuses[1].DurationUntilReset);
    }

    [Fact]
    public async Task The_gcra_algorithm_with_a_burst_refills_smoothly()
    {
        await using var server = await Start();
        var first = await server.CallAsync("test", D(("gcra", "x")));
        Assert.Equal(1u, first.Statuses[0].LimitRemaining);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(1)), first.Statuses[0].DurationUntilReset);
        Assert.Equal(0u, (await server.CallAsync("test", D(("gcra", "x")))).Statuses[0].LimitRemaining);
        var over = await server.CallAsync("test", D(("gcra", "x")));
        Assert.Equal(Code.OverLimit, over.OverallCode);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(1)), over.Statuses[0].DurationUntilReset);

        // The hit over the limit was counted too (HitCounting.All), owing one interval: two intervals later, exactly one
        // more fits. A fixed window of 10/s would have admitted 10 at once.
        server.Time.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal(Code.Ok, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
    }

    [Fact]
    public async Task The_gcra_algorithm_counting_within_the_limit_refills_one_interval_after_a_rejection()
    {
        await using var server = await Start(o => o.HitCounting = EnvoyHitCounting.WithinLimit);
        await server.CallAsync("test", D(("gcra", "x")));
        await server.CallAsync("test", D(("gcra", "x")));
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
        server.Time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Equal(Code.Ok, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
    }

    [Fact]
    public async Task The_sliding_window_algorithm_weighs_the_previous_window()
    {
        await using var server = await Start();
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(Code.Ok, (await server.CallAsync("test", D(("sliding", "x")))).OverallCode);
        }

        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("sliding", "x")))).OverallCode);

        // 15 s into the next minute, 45/60 of the previous 4 still weigh: floor(3) used, 1 left. A fixed window would allow 4.
        server.Time.Advance(TimeSpan.FromSeconds(65));
        var next = await server.CallAsync("test", D(("sliding", "x")));
        Assert.Equal(Code.Ok, next.OverallCode);
        Assert.Equal(0u, next.Statuses[0].LimitRemaining);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("sliding", "x")))).OverallCode);
    }

    [Fact]
    public async Task Metrics_count_total_within_near_and_over_limit_hits_per_rule()
    {
        await using var server = await Start();
        using var metrics = new MetricsRecorder(server.Services.GetRequiredService<IMeterFactory>());
        for (var i = 0; i < 5; i++)
        {
            await server.CallAsync("test", D(("remote_address", "3.3.3.3")));
        }

        // Limit 3, near-limit threshold floor(3 × 0.8) = 2: the 3rd hit is near, the 4th and 5th over.
        Assert.Equal(5, metrics.Sum("rate_limit.total_hits", "test.remote_address"));
        Assert.Equal(3, metrics.Sum("rate_limit.within_limit", "test.remote_address"));
        Assert.Equal(1, metrics.Sum("rate_limit.near_limit", "test.remote_address"));
        Assert.Equal(2, metrics.Sum("rate_limit.over_limit", "test.remote_address"));

        // detailed_metric names the descriptor's values.
        await server.CallAsync("test", D(("detailed", "v1")));
        Assert.Equal(1, metrics.Sum("rate_limit.total_hits", "test.detailed_v1"));
    }

    [Fact]
    public async Task Concurrent_calls_admit_exactly_the_limit()
    {
        await using var server = await Start();
        var calls = Enumerable.Range(0, 40).Select(_ => server.CallAsync("test", D(("remote_address", "7.7.7.7")))).ToArray();
        var responses = await Task.WhenAll(calls);
        Assert.Equal(3, responses.Count(r => r.OverallCode == Code.Ok));
        Assert.Equal([0u, 1u, 2u], responses.Where(r => r.OverallCode == Code.Ok).Select(r => r.Statuses[0].LimitRemaining).Order());
    }

    [Fact]
    public async Task The_grpc_health_service_reports_serving()
    {
        await using var server = await Start();
        var health = new Grpc.Health.V1.Health.HealthClient(server.Channel);
        var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }
}
