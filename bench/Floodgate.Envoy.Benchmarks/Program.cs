using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Envoy;
using Floodgate.Envoy.Benchmarks;
using Floodgate.Redis;
using Floodgate.Stores;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// A bounded load driver: for each scenario, W workers share one HTTP/2 cleartext channel to a Kestrel on 127.0.0.1 and
// call for a fixed time after a warm-up; every call's latency is recorded. Client and server share the machine.
var seconds = Arg("--seconds", 5);
var warmup = Arg("--warmup", 1);
var concurrency = Arg("--concurrency", 32);
var rounds = Arg("--rounds", 3);
var useRedis = !args.Contains("--no-redis");
const int MaxCallsPerWorker = 2_000_000;

const string Yaml = """
    domain: bench
    descriptors:
      - key: remote_address
        rate_limit: { unit: second, requests_per_unit: 1000000 }
      - key: user
        rate_limit: { unit: minute, requests_per_unit: 100000000 }
      - key: path
        value: /api/*
        rate_limit: { unit: second, requests_per_unit: 1000000, algorithm: gcra }
    """;

var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-bench-" + Guid.NewGuid().ToString("n"));
Directory.CreateDirectory(directory);
File.WriteAllText(Path.Combine(directory, "bench.yaml"), Yaml);
Process? redis = null;
try
{
    Console.WriteLine(Machine());
    Console.WriteLine($"Each scenario: {rounds} interleaved rounds of {warmup} s warm-up and {seconds} s measured, {concurrency} concurrent calls on one HTTP/2 connection; calls/s is the median round.");
    Console.WriteLine();
    Console.WriteLine("| Store | Scenario | calls/s | p50 µs | p99 µs | alloc/call (client+server) | vs baseline |");
    Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
    await RunStore("memory", new MemoryStore());
    if (useRedis)
    {
        var port = FreePort();
        redis = StartRedis(port);
        if (redis is null)
        {
            Console.WriteLine("| redis | skipped: redis-server is not installed | | | | | |");
        }
        else
        {
            await using var store = await RedisStore.ConnectAsync(new RedisStoreOptions { Configuration = $"127.0.0.1:{port}", Timeout = TimeSpan.FromSeconds(1), OverLimitCache = false });
            await RunStore("redis", store);
        }
    }
}
finally
{
    if (redis is { HasExited: false })
    {
        redis.Kill();
        redis.WaitForExit(10_000);
    }

    redis?.Dispose();
    Directory.Delete(directory, recursive: true);
}

async Task RunStore(string name, IRateLimitStore store)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
    builder.Services.AddSingleton(store);
    builder.Services.AddFloodgateEnvoy(o => { o.ConfigDirectory = directory; o.WatchConfigDirectory = false; });
    await using var app = builder.Build();
    app.MapFloodgateEnvoy();
    app.MapGrpcService<NoopService>();
    await app.StartAsync();
    var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
    using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false } });
    var limiter = new RateLimitService.RateLimitServiceClient(channel);
    var noop = new Noop.NoopClient(channel);

    var users = Enumerable.Range(0, 1000).Select(i => "user-" + i.ToString(CultureInfo.InvariantCulture)).ToArray();
    RateLimitRequest One(int i) => Request(("user", users[i % users.Length]));
    RateLimitRequest Three(int i) => Request(("remote_address", "10.0." + (i % 250).ToString(CultureInfo.InvariantCulture) + ".1"), ("user", users[i % users.Length]), ("path", "/api/orders"));

    (string Name, Func<int, Task<RateLimitResponse>> Call, int Baseline)[] scenarios =
    [
        ("baseline: no-op method, 1 descriptor", i => noop.EchoAsync(One(i)).ResponseAsync, -1),
        ("ShouldRateLimit, 1 descriptor", i => limiter.ShouldRateLimitAsync(One(i)).ResponseAsync, 0),
        ("baseline: no-op method, 3 descriptors", i => noop.EchoAsync(Three(i)).ResponseAsync, -1),
        ("ShouldRateLimit, 3 descriptors", i => limiter.ShouldRateLimitAsync(Three(i)).ResponseAsync, 2),
    ];

    // Rounds interleave the scenarios so that a baseline and its subject see the same background noise.
    var rates = scenarios.Select(_ => new List<double>()).ToArray();
    var samples = scenarios.Select(_ => new List<long>()).ToArray();
    var bytes = new long[scenarios.Length];

    // One unmeasured pass over every scenario first, so that JIT tiering and connection warm-up land in no round.
    foreach (var scenario in scenarios)
    {
        await Drive(scenario.Call, TimeSpan.FromSeconds(warmup), record: false);
    }

    for (var round = 0; round < rounds; round++)
    {
        for (var k = 0; k < scenarios.Length; k++)
        {
            var (rate, latencies, allocated) = await Measure(scenarios[k].Call);
            rates[k].Add(rate);
            samples[k].AddRange(latencies);
            bytes[k] += allocated;
        }
    }

    for (var k = 0; k < scenarios.Length; k++)
    {
        var latencies = samples[k].ToArray();
        Array.Sort(latencies);
        double Micros(double q) => latencies.Length == 0 ? 0 : latencies[Math.Min(latencies.Length - 1, (int)(q * latencies.Length))] * 1_000_000.0 / Stopwatch.Frequency;
        var rate = Median(rates[k]);
        var ratio = scenarios[k].Baseline < 0 ? "1 (baseline)" : (rate / Median(rates[scenarios[k].Baseline])).ToString("P0", CultureInfo.InvariantCulture);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {scenarios[k].Name} | {rate:N0} | {Micros(0.50):N0} | {Micros(0.99):N0} | {bytes[k] / Math.Max(1, latencies.Length):N0} B | {ratio} |"));
    }

    await app.StopAsync();
}

async Task<(double Rate, long[] Latencies, long Allocated)> Measure(Func<int, Task<RateLimitResponse>> call)
{
    // Warm-up, then measure; each worker stops at the deadline or after MaxCallsPerWorker calls.
    await Drive(call, TimeSpan.FromSeconds(warmup), record: false);
    var allocated = GC.GetTotalAllocatedBytes(precise: true);
    var started = Stopwatch.GetTimestamp();
    var latencies = await Drive(call, TimeSpan.FromSeconds(seconds), record: true);
    var elapsed = Stopwatch.GetElapsedTime(started);
    return (latencies.Length / elapsed.TotalSeconds, latencies, GC.GetTotalAllocatedBytes(precise: true) - allocated);
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}

async Task<long[]> Drive(Func<int, Task<RateLimitResponse>> call, TimeSpan duration, bool record)
{
    var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
    var workers = new Task<List<long>>[concurrency];
    for (var w = 0; w < concurrency; w++)
    {
        var worker = w;
        workers[w] = Task.Run(async () =>
        {
            var samples = new List<long>(record ? 65536 : 0);
            var i = worker;
            for (var n = 0; n < MaxCallsPerWorker && Stopwatch.GetTimestamp() < deadline; n++, i += concurrency)
            {
                var start = Stopwatch.GetTimestamp();
                var response = await call(i);
                if (response.OverallCode == RateLimitResponse.Types.Code.Unknown && response.Statuses.Count > 0)
                {
                    throw new InvalidOperationException("The service answered UNKNOWN.");
                }

                if (record)
                {
                    samples.Add(Stopwatch.GetTimestamp() - start);
                }
            }

            return samples;
        });
    }

    var all = await Task.WhenAll(workers);
    return [.. all.SelectMany(s => s)];
}

static RateLimitRequest Request(params (string Key, string Value)[] entries)
{
    var request = new RateLimitRequest { Domain = "bench" };
    var descriptor = new RateLimitDescriptor();
    request.Descriptors.Add(descriptor);
    descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = entries[0].Key, Value = entries[0].Value });
    for (var k = 1; k < entries.Length; k++)
    {
        var next = new RateLimitDescriptor();
        next.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = entries[k].Key, Value = entries[k].Value });
        request.Descriptors.Add(next);
    }

    return request;
}

int Arg(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
        ? Math.Min(value, name == "--concurrency" ? 1024 : 600)
        : fallback;
}

static string Machine()
{
    var cpu = File.Exists("/proc/cpuinfo")
        ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
        : null;
    return $"Machine: {cpu ?? "unknown CPU"}, {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, server GC";
}

static int FreePort()
{
    var listener = new TcpListener(IPAddress.Loopback, 0);
    listener.Start();
    var port = ((IPEndPoint)listener.LocalEndpoint).Port;
    listener.Stop();
    return port;
}

static Process? StartRedis(int port)
{
    ProcessStartInfo info = new("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var arg in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning" })
    {
        info.ArgumentList.Add(arg);
    }

    Process process;
    try
    {
        process = Process.Start(info)!;
    }
    catch (System.ComponentModel.Win32Exception)
    {
        return null;
    }

    process.OutputDataReceived += static (_, _) => { };
    process.ErrorDataReceived += static (_, _) => { };
    process.BeginOutputReadLine();
    process.BeginErrorReadLine();

    // Bounded wait for the port to accept connections.
    for (var attempt = 0; attempt < 500; attempt++)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return process;
        }
        catch (SocketException)
        {
            Thread.Sleep(10);
        }
    }

    process.Kill();
    process.Dispose();
    throw new TimeoutException("redis-server did not start within 5 s.");
}

/// <summary>The baseline method: answers OK for every descriptor without deciding anything.</summary>
internal sealed class NoopService : Noop.NoopBase
{
    private static readonly RateLimitResponse.Types.DescriptorStatus Ok = new() { Code = RateLimitResponse.Types.Code.Ok };

    public override Task<RateLimitResponse> Echo(RateLimitRequest request, ServerCallContext context)
    {
        var response = new RateLimitResponse { OverallCode = RateLimitResponse.Types.Code.Ok };
        for (var i = 0; i < request.Descriptors.Count; i++)
        {
            response.Statuses.Add(Ok);
        }

        return Task.FromResult(response);
    }
}
