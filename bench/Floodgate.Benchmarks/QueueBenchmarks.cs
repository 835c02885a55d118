using System.Net;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// What a concurrency queue costs a request that does not wait (docs/shaping.md): one request evaluated on a service
/// concurrency rule with free permits and released, on the memory store, as the middleware does it
/// (<see cref="RateLimitEngine.EvaluateQueuedAsync"/> on a rule with a queue) against the engine's plain
/// <see cref="RateLimitEngine.EvaluateAsync(IRequestContext, RateLimitTier, RateLimitTier, CancellationToken)"/> on the
/// same rule without one. And a rejection: at once without a queue, against a queue that is full.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class QueueBenchmarks
{
    private const int Operations = 10_000;
    private readonly RequestContext _request = new() { Path = "/reports", ClientIp = IPAddress.Parse("203.0.113.7") };
    private RateLimitEngine _plain = null!;
    private RateLimitEngine _queued = null!;
    private RateLimitEngine _plainFull = null!;
    private RateLimitEngine _queueFull = null!;

    [GlobalSetup]
    public void Setup()
    {
        _plain = Engine(Limit.Concurrency(1_000_000));
        _queued = Engine(Limit.Concurrency(1_000_000).WithQueue(100, TimeSpan.FromSeconds(2)));
        _plainFull = Engine(Limit.Concurrency(1));
        _queueFull = Engine(Limit.Concurrency(1).WithQueue(1, Limit.MaxQueueTimeout));

        // The full ones: one request holds the permit; the queued one also has a waiter that never leaves during the run.
        _ = _plainFull.EvaluateAsync(_request).AsTask().GetAwaiter().GetResult();
        _ = _queueFull.EvaluateAsync(_request).AsTask().GetAwaiter().GetResult();
        _ = Queued(_queueFull);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public void Admitted_without_a_queue()
    {
        for (var i = 0; i < Operations; i++)
        {
            var result = _plain.EvaluateAsync(_request).Result;
            _ = _plain.ReleaseAsync(result);
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Admitted_by_a_rule_with_a_queue()
    {
        for (var i = 0; i < Operations; i++)
        {
            var result = Queued(_queued).Result;
            _ = _queued.ReleaseAsync(result);
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Rejected_without_a_queue()
    {
        for (var i = 0; i < Operations; i++)
        {
            _ = _plainFull.EvaluateAsync(_request).Result;
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Rejected_by_a_full_queue()
    {
        for (var i = 0; i < Operations; i++)
        {
            _ = Queued(_queueFull).Result;
        }
    }

    private ValueTask<RateLimitResult> Queued(RateLimitEngine engine) =>
        engine.EvaluateQueuedAsync(engine.Policy, _request, RateLimitTier.Edge, RateLimitTier.Global, ReadOnlyMemory<RateLimitCheck>.Empty);

    private static RateLimitEngine Engine(Limit limit) =>
        new(new RateLimitPolicy([new RateLimitRule("reports", RateLimitTier.Service, limit)]), new MemoryStore());

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(15).WithInvocationCount(4).WithUnrollFactor(1).WithToolchain(InProcessEmitToolchain.Instance));
            HideColumns("Error", "StdDev");
        }
    }
}
