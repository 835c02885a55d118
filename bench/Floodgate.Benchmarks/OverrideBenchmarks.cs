using BenchmarkDotNet.Attributes;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// What overrides add to a decision: the engine evaluating a user-tier plan rule for 100,000 subjects on the memory
/// store, without an override store (the baseline), with one holding 100,000 overrides that every request's subject has
/// (each lookup finds one and applies its plan), and with the same 100,000 stored for other subjects (each lookup misses).
/// Requests are built beforehand and visited in a fixed shuffled order; every decision is admitted.
/// </summary>
[MemoryDiagnoser]
public class OverrideBenchmarks
{
    private const int Subjects = 100_000;
    private const int OperationsPerInvoke = 100_000;

    private RateLimitEngine _without = null!;
    private RateLimitEngine _hits = null!;
    private RateLimitEngine _misses = null!;
    private RequestContext[] _requests = [];

    [GlobalSetup]
    public void Setup()
    {
        var huge = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second), burst: 1_000_000_000);
        var rule = new RateLimitRule("per-user", RateLimitTier.User, new Dictionary<string, Limit> { ["free"] = huge, ["pro"] = huge }, "free");
        var policy = new RateLimitPolicy([rule]);
        var store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 1_000_000 });
        var hits = new MemoryOverrideStore();
        var misses = new MemoryOverrideStore();
        for (var i = 0; i < Subjects; i++)
        {
            hits.SetAsync(new RateLimitOverride($"user-{i}", "pro")).AsTask().GetAwaiter().GetResult();
            misses.SetAsync(new RateLimitOverride($"other-{i}", "pro")).AsTask().GetAwaiter().GetResult();
        }

        _without = new RateLimitEngine(policy, store);
        _hits = new RateLimitEngine(policy, store) { Overrides = hits };
        _misses = new RateLimitEngine(policy, store) { Overrides = misses };
        var order = Enumerable.Range(0, Subjects).ToArray();
        new Random(42).Shuffle(order);
        _requests = [.. order.Select(i => new RequestContext { Subject = $"user-{i}", Plan = "free" })];

        // Every key exists before measuring.
        Run(_without);
        Run(_hits);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = OperationsPerInvoke)]
    public int Without_overrides() => Run(_without);

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke)]
    public int Overrides_100k_every_subject_overridden() => Run(_hits);

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke)]
    public int Overrides_100k_for_other_subjects() => Run(_misses);

    private int Run(RateLimitEngine engine)
    {
        var admitted = 0;
        var requests = _requests;
        for (var i = 0; i < OperationsPerInvoke; i++)
        {
            var pending = engine.EvaluateAsync(requests[i % requests.Length], RateLimitTier.User, RateLimitTier.User);
            admitted += pending.Result.IsAllowed ? 1 : 0;
        }

        return admitted;
    }
}
