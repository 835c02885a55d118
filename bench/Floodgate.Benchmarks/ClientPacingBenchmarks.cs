using System.Net;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Floodgate.Client;
using Floodgate.Client.Pacing;

namespace Floodgate.Benchmarks;

/// <summary>
/// What the client's pacing handler adds to a request that needs no wait: the same request through the same handler
/// chain with and without it, over a handler that answers at once with the gateway's fields (a quota of a billion a
/// second, so no slot is ever waited for; the pacer still takes its slot and reads the answer's fields). Measured both
/// through <see cref="HttpMessageInvoker"/> (the handlers alone) and through <see cref="HttpClient"/> (what an
/// application calls, with its own per-request costs).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class ClientPacingBenchmarks
{
    private const int Operations = 1_000;

    private readonly HttpRequestMessage _request = new(HttpMethod.Get, "http://api.test/items");
    private HttpMessageInvoker _plainInvoker = null!;
    private HttpMessageInvoker _pacedInvoker = null!;
    private HttpClient _plainClient = null!;
    private HttpClient _pacedClient = null!;

    [GlobalSetup]
    public void Setup()
    {
        var answer = new HttpResponseMessage(HttpStatusCode.OK);
        answer.Headers.TryAddWithoutValidation("RateLimit-Policy", "\"per-user\";q=1000000000;w=1");
        answer.Headers.TryAddWithoutValidation("RateLimit", "\"per-user\";r=999999999;t=1");
        var answered = Task.FromResult(answer);
        var metrics = new PacingMetrics(null);
        _plainInvoker = new HttpMessageInvoker(new PassThrough { InnerHandler = new Answer(answered) });
        _pacedInvoker = new HttpMessageInvoker(new PacingHandler(new PacedClient("bench", TimeProvider.System), new FloodgatePacingOptions(), metrics) { InnerHandler = new Answer(answered) });
        _plainClient = new HttpClient(new PassThrough { InnerHandler = new Answer(answered) });
        _pacedClient = new HttpClient(new PacingHandler(new PacedClient("bench-client", TimeProvider.System), new FloodgatePacingOptions(), metrics) { InnerHandler = new Answer(answered) });

        // The first request of each pacer is its probe.
        _ = _pacedInvoker.SendAsync(_request, CancellationToken.None).GetAwaiter().GetResult();
        _ = _pacedClient.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://api.test/items")).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _plainInvoker.Dispose();
        _pacedInvoker.Dispose();
        _plainClient.Dispose();
        _pacedClient.Dispose();
        _request.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public void Invoker_plain_chain()
    {
        for (var i = 0; i < Operations; i++)
        {
            _ = _plainInvoker.SendAsync(_request, CancellationToken.None).GetAwaiter().GetResult();
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Invoker_with_pacing()
    {
        for (var i = 0; i < Operations; i++)
        {
            _ = _pacedInvoker.SendAsync(_request, CancellationToken.None).GetAwaiter().GetResult();
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void HttpClient_plain_chain()
    {
        for (var i = 0; i < Operations; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "http://api.test/items");
            _ = _plainClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void HttpClient_with_pacing()
    {
        for (var i = 0; i < Operations; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "http://api.test/items");
            _ = _pacedClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).GetAwaiter().GetResult();
        }
    }

    /// <summary>The baseline's handler in the pacer's place: passes the request on.</summary>
    private sealed class PassThrough : DelegatingHandler
    {
    }

    /// <summary>
    /// Answers at once, allocating nothing of its own; it reads the request's host and headers, as SocketsHttpHandler
    /// does to pick its connection pool and write the request, so that what a new request makes on first use (its
    /// <see cref="Uri"/>'s parsed parts, its header collection) is made in both chains, not only in the one whose pacer
    /// reads them to find its route.
    /// </summary>
    private sealed class Answer(Task<HttpResponseMessage> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            _ = request.RequestUri!.Host;
            _ = request.Headers.NonValidated.Contains("Authorization");
            return answer;
        }
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            // In process: the handlers are all in this assembly's dependencies, and a shared machine can take longer
            // than BenchmarkDotNet's build timeout to build a separate one.
            AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(10).WithInvocationCount(16).WithUnrollFactor(1).WithToolchain(InProcessEmitToolchain.Instance));
            HideColumns("Error", "StdDev");
        }
    }
}
