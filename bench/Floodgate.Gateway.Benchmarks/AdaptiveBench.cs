using System.Diagnostics;
using System.Globalization;
using System.Net;
using Floodgate.Adaptive;
using Floodgate.AspNetCore;
using Floodgate.Rules;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

/// <summary>
/// <c>adaptive &lt;seconds&gt; &lt;clients&gt; &lt;workers&gt; &lt;service-ms&gt; &lt;rounds&gt;</c>: throughput and latency through the
/// Floodgate middleware in front of a queueing upstream (each request holds one of <c>workers</c> permits for
/// <c>service-ms</c>), without an adaptive limit (the baseline) and with one enforced, in alternating rounds of a closed
/// loop of <c>clients</c>, each round bounded in time and in requests. Everything on loopback, in this process.
/// </summary>
internal static class AdaptiveBench
{
    private const int MaxRequestsPerRound = 200_000;

    public static async Task<int> RunAsync(int seconds, int clients, int workers, int serviceMs, int rounds)
    {
        var permits = new SemaphoreSlim(workers, workers);
        await using var upstream = await StartAsync(null, async context =>
        {
            await permits.WaitAsync(context.RequestAborted);
            try
            {
                await Task.Delay(serviceMs, context.RequestAborted);
            }
            finally
            {
                permits.Release();
            }

            await context.Response.WriteAsync("served");
        });
        var upstreamUrl = Address(upstream);
        using var forward = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4096 }) { BaseAddress = new Uri(upstreamUrl) };

        // The front door: the middleware, then a minimal forwarder to the upstream.
        async Task<WebApplication> FrontAsync(AdaptiveMode? mode) => await StartAsync(
            o => o.AdaptiveRules = mode is { } m
                ? [new AdaptiveConcurrencyRule("upstream", new AdaptiveConcurrencyOptions { Mode = m, MinLimit = 2, MaxLimit = 1000, InitialLimit = 10, MinRttInterval = TimeSpan.FromSeconds(10) })]
                : [],
            async context =>
            {
                using var answer = await forward.GetAsync("/", context.RequestAborted);
                context.Response.StatusCode = (int)answer.StatusCode;
                await answer.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
            });

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"adaptive bench: {clients} clients, upstream {workers} workers x {serviceMs} ms (capacity {workers * 1000.0 / serviceMs:F0}/s), {seconds} s rounds, {rounds} rounds each, alternating"));
        Console.WriteLine("| round | case | 2xx/s | 503/s | p50 2xx (ms) | p99 2xx (ms) | p99 all (ms) | learned limit |");
        Console.WriteLine("|---:|---|---:|---:|---:|---:|---:|---:|");
        // Round 0 warms the process (JIT, connections) in both cases and is not reported: a cold start would inflate the
        // first baseline measured, and the first round's latencies.
        for (var round = 0; round <= rounds; round++)
        {
            foreach (var mode in new AdaptiveMode?[] { null, AdaptiveMode.Enforce })
            {
                await using var front = await FrontAsync(mode);
                using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4096 }) { BaseAddress = new Uri(Address(front)) };
                var result = await LoadAsync(client, clients, TimeSpan.FromSeconds(round == 0 ? 2 : seconds));
                if (round == 0)
                {
                    continue;
                }

                var limit = front.Services.GetRequiredService<Floodgate.AspNetCore.Middleware.FloodgateRuntime>().Adaptive.Snapshot() is [var s] ? s.Limit.ToString(CultureInfo.InvariantCulture) : "-";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {round} | {(mode is null ? "no adaptive limit" : "adaptive, enforce")} | {result.Ok / result.Elapsed:F0} | {result.Refused / result.Elapsed:F0} | {result.P(result.OkLatencies, 0.50):F1} | {result.P(result.OkLatencies, 0.99):F1} | {result.P(result.AllLatencies, 0.99):F1} | {limit} |"));
            }
        }

        return 0;
    }

    private static async Task<Load> LoadAsync(HttpClient client, int clients, TimeSpan duration)
    {
        var sent = 0;
        var ok = new List<double>[clients];
        var all = new List<double>[clients];
        var refused = 0;
        var clock = Stopwatch.StartNew();

        // A short warm-up (connections, JIT, the min RTT measurement) is not counted.
        var warmUp = TimeSpan.FromSeconds(1);
        async Task ClientAsync(int index)
        {
            ok[index] = [];
            all[index] = [];
            while (clock.Elapsed < duration + warmUp && Interlocked.Increment(ref sent) <= MaxRequestsPerRound)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await client.GetAsync("/");
                var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                var counted = clock.Elapsed >= warmUp;
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    if (counted)
                    {
                        ok[index].Add(ms);
                    }
                }
                else if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    Interlocked.Add(ref refused, counted ? 1 : 0);
                    await Task.Delay(10);
                }

                if (counted)
                {
                    all[index].Add(ms);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(i => Task.Run(() => ClientAsync(i))));
        var elapsed = Math.Max(0.001, (clock.Elapsed - warmUp).TotalSeconds);
        return new Load([.. ok.SelectMany(l => l).Order()], [.. all.SelectMany(l => l).Order()], refused, elapsed);
    }

    private static async Task<WebApplication> StartAsync(Action<FloodgateOptions>? floodgate, RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        if (floodgate is not null)
        {
            builder.Services.AddFloodgate(floodgate);
        }

        var app = builder.Build();
        if (floodgate is not null)
        {
            app.UseFloodgate();
        }

        app.Run(handler);
        await app.StartAsync();
        return app;
    }

    private static string Address(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    private sealed record Load(double[] OkLatencies, double[] AllLatencies, int Refused, double Elapsed)
    {
        public int Ok => OkLatencies.Length;

        public double P(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
