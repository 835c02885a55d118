using System.Diagnostics.Metrics;
using Floodgate.Adaptive;
using Floodgate.AspNetCore.Middleware;
using Floodgate.AspNetCore.Tests.Middleware;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Floodgate.AspNetCore.Tests.Adaptive;

/// <summary>
/// The middleware in front of a real queueing server on loopback (<see cref="QueueingUpstream"/>), on the real clock:
/// what the adaptive limit learns from the latencies it measures. Each phase is bounded in time and in requests.
/// </summary>
public sealed class AdaptiveConcurrencyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ServiceTime = TimeSpan.FromMilliseconds(40);

    private static AdaptiveConcurrencyOptions Options(AdaptiveMode mode) => new()
    {
        Mode = mode,
        MinLimit = 2,
        MaxLimit = 200,
        InitialLimit = 10,
        SampleWindow = TimeSpan.FromMilliseconds(200),
        MinRttInterval = TimeSpan.FromSeconds(5),
        MinRttSamples = 10,
    };

    [Fact]
    public async Task Enforced_the_limit_converges_near_the_workers_drops_when_they_are_taken_away_and_recovers()
    {
        const int Workers = 8;
        var upstream = new QueueingUpstream(maxWorkers: Workers, workers: Workers, ServiceTime);
        await using var app = await StartAsync(upstream, "enforced-queue", Options(AdaptiveMode.Enforce));
        var limiter = Limiter(app);

        var healthy = await AdaptiveLoad.RunAsync(app.Client, "/work", clients: 40, TimeSpan.FromSeconds(8), maxRequests: 20_000, () => limiter.Limit);
        output.WriteLine($"healthy ({Workers} workers): {healthy}");
        var settled = healthy.SettledOver(TimeSpan.FromSeconds(2));
        Assert.InRange(settled, Workers / 2, 3 * Workers);
        Assert.True(healthy.Unavailable > 0, "40 clients against a learned limit near 8 get 503s");
        Assert.Equal(0, healthy.Other);

        await upstream.SetWorkersAsync(2);
        var degraded = await AdaptiveLoad.RunAsync(app.Client, "/work", clients: 40, TimeSpan.FromSeconds(6), maxRequests: 20_000, () => limiter.Limit);
        output.WriteLine($"degraded (2 workers): {degraded}");
        var dropped = degraded.SettledOver(TimeSpan.FromSeconds(2));
        Assert.True(dropped < settled, $"the limit drops when the workers are taken away ({settled} -> {dropped})");
        Assert.InRange(dropped, 1, 3 * 2);

        await upstream.SetWorkersAsync(Workers);
        var recovered = await AdaptiveLoad.RunAsync(app.Client, "/work", clients: 40, TimeSpan.FromSeconds(8), maxRequests: 20_000, () => limiter.Limit);
        output.WriteLine($"recovered ({Workers} workers): {recovered}");
        Assert.InRange(recovered.SettledOver(TimeSpan.FromSeconds(2)), Workers / 2, 3 * Workers);
        Assert.Equal(0, recovered.Other);
    }

    [Fact]
    public async Task In_shadow_mode_nothing_is_refused_while_the_exported_gauge_moves()
    {
        const string Rule = "shadow-queue";
        var upstream = new QueueingUpstream(maxWorkers: 4, workers: 4, ServiceTime);
        await using var app = await StartAsync(upstream, Rule, Options(AdaptiveMode.Shadow));
        var limiter = Limiter(app);

        // The gauge as an exporter sees it: the meter's observable instrument, read through a listener.
        var gauge = new List<long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == AdaptiveLimiterSet.MeterName && instrument.Name == "floodgate.adaptive.limit")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "rule" && Equals(tag.Value, Rule))
                {
                    gauge.Add(value);
                }
            }
        });
        listener.Start();

        var load = await AdaptiveLoad.RunAsync(app.Client, "/work", clients: 24, TimeSpan.FromSeconds(6), maxRequests: 20_000, () =>
        {
            listener.RecordObservableInstruments();
            return limiter.Limit;
        });
        output.WriteLine($"shadow: {load}; gauge {string.Join(' ', gauge)}");

        Assert.Equal(0, load.Unavailable);
        Assert.Equal(0, load.Other);
        Assert.True(load.Ok > 100, $"the clients were served ({load.Ok})");
        Assert.True(gauge.Distinct().Count() > 1, "the exported limit moves");
        listener.RecordObservableInstruments();
        Assert.Equal(limiter.Limit, gauge[^1]);
        Assert.True(limiter.Rejected > 0, "24 clients beyond what 4 workers take in time: enforcing would have refused some");
        var snapshot = Assert.Single(app.App.Services.GetRequiredService<FloodgateRuntime>().Adaptive.Snapshot());
        Assert.Equal("shadow", snapshot.Mode);
        Assert.NotNull(snapshot.MinRttMilliseconds);
    }

    private static AdaptiveConcurrencyLimiter Limiter(TestApp app) =>
        app.App.Services.GetRequiredService<FloodgateRuntime>().Adaptive.Entries[0].Limiter;

    private static Task<TestApp> StartAsync(QueueingUpstream upstream, string rule, AdaptiveConcurrencyOptions options) =>
        TestApp.StartAsync(
            o => o.AdaptiveRules = [new AdaptiveConcurrencyRule(rule, options) { Match = new Rules.RuleMatch { Paths = [new Rules.PathGlob("/work")] } }],
            app => app.MapGet("/work", upstream.ServeAsync),
            services: s => s.AddSingleton(TimeProvider.System));
}
