using System.Diagnostics.Metrics;
using System.Net;
using BenchmarkDotNet.Attributes;
using Floodgate.AspNetCore;
using Floodgate.Costs;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.Benchmarks;

/// <summary>
/// One request through the Floodgate middleware on the memory store, its response the 1 KB event stream of
/// bench/gateway/cost.sh (ten chunks flushed one by one, then the usage event): an edge rule without a cost (off) and
/// the same rule reserving 100 and settling from the scanned usage (on). The difference is what cost scanning costs a
/// request in the gateway, without the network. The engine's instruments are listened to, as the gateway's Prometheus
/// exporter does.
/// </summary>
/// <remarks>Run: <c>dotnet run -c Release --project bench/Floodgate.Benchmarks -- --filter '*CostScanning*'</c>.</remarks>
[MemoryDiagnoser]
public class CostScanningBenchmarks
{
    private static readonly byte[] Chunk = "data: {\"id\":\"c1\",\"model\":\"small\",\"choices\":[{\"delta\":{\"content\":\"token\"}}],\"usage\":null}\n\n"u8.ToArray();
    private static readonly byte[] Last = "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}\n\ndata: [DONE]\n\n"u8.ToArray();

    private ServiceProvider _services = null!;
    private RequestDelegate _pipeline = null!;
    private MeterListener _listener = null!;
    private long _measured;

    /// <summary>Whether the rule has a cost: reserve 100, charge the usage's total_tokens.</summary>
    [Params(false, true)]
    public bool Scanning { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rule = new RateLimitRule("tokens", RateLimitTier.Edge, Limit.FixedWindow(Rate.Parse("1000000000000/min")))
        {
            Costs = Scanning ? new RuleCost { Reserve = CostEstimate.Constant(100), Measure = CostMeasure.TotalTokens } : null,
        };
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddFloodgate(options => options.Policy = new RateLimitPolicy([rule]));
        _services = services.BuildServiceProvider();
        var app = new ApplicationBuilder(_services);
        app.UseFloodgate();
        app.Run(static async context =>
        {
            context.Response.ContentType = "text/event-stream";
            for (var i = 0; i < 10; i++)
            {
                await context.Response.Body.WriteAsync(Chunk);
                await context.Response.Body.FlushAsync();
            }

            await context.Response.Body.WriteAsync(Last);
        });
        _pipeline = app.Build();

        _listener = new MeterListener();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name.StartsWith(RateLimitEngine.MeterName, StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _measured, value));
        _listener.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _listener.Dispose();
        _services.Dispose();
    }

    [Benchmark(Description = "request with a 1 KB event stream")]
    public Task Request()
    {
        var context = new DefaultHttpContext { RequestServices = _services };
        context.Connection.RemoteIpAddress = IPAddress.Loopback;
        context.Request.Method = "POST";
        context.Request.Path = "/v1/chat/completions";
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(Stream.Null));
        return _pipeline(context);
    }
}
