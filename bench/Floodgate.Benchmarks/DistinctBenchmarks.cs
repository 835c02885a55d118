using System.Net;
using BenchmarkDotNet.Attributes;
using Floodgate.Abuse;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// What a distinct rule adds on the decision path, memory store: the engine deciding one user rule for 10,000 subjects
/// (the baseline), then counting the same requests in a distinct rule (client addresses per subject): keys with a few
/// addresses each (the exact set), and keys past the exact capacity (the HyperLogLog). Requests are built beforehand
/// and visited in a fixed shuffled order; nothing goes over.
/// </summary>
[MemoryDiagnoser]
public class DistinctBenchmarks
{
    private const int Subjects = 10_000;
    private const int OperationsPerInvoke = 10_000;

    private RateLimitEngine _decide = null!;
    private RateLimitEngine _distinct = null!;
    private RequestContext[] _few = [];
    private RequestContext[] _many = [];

    [GlobalSetup]
    public void Setup()
    {
        var huge = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second), burst: 1_000_000_000);
        _decide = new RateLimitEngine(new RateLimitPolicy([new RateLimitRule("per-user", RateLimitTier.User, huge)]), new MemoryStore(new MemoryStoreOptions { MaxEntries = 1_000_000 }));
        var distinct = new RateLimitRule("ips-per-user", RateLimitTier.User, Limit.FixedWindow(new Rate(1_000_000_000, 1, RateUnit.Day)))
        {
            Key = [KeyPart.Subject],
            Distinct = new DistinctCounting { Of = KeyPart.ClientIp },
        };
        _distinct = new RateLimitEngine(new RateLimitPolicy([distinct]), new MemoryStore()) { DistinctStore = new MemoryDistinctStore(maxKeys: 1_000_000) };

        // Few: each subject from 4 addresses (exact sets). Many: the subjects of "many-" from 1,000 addresses (past 64: HyperLogLogs).
        var random = new Random(42);
        _few = [.. Enumerable.Range(0, OperationsPerInvoke).Select(i => new RequestContext { Subject = $"user-{i % Subjects}", ClientIp = new IPAddress([10, 0, (byte)(i / Subjects), 1]) })];
        _many = [.. Enumerable.Range(0, OperationsPerInvoke).Select(i => new RequestContext { Subject = $"many-{i % 10}", ClientIp = new IPAddress([10, 1, (byte)(i % 1000 / 256), (byte)(i % 256)]) })];
        random.Shuffle(_few);
        random.Shuffle(_many);

        // Every key exists (and every "many" key is past the exact set) before measuring.
        for (var round = 0; round < 4; round++)
        {
            Decide();
            Count(_few);
            Count(_many);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = OperationsPerInvoke, Description = "one user rule decided (no distinct rule)")]
    public int Decide()
    {
        var admitted = 0;
        foreach (var request in _few)
        {
            admitted += _decide.EvaluateAsync(request).Result.IsAllowed ? 1 : 0;
        }

        return admitted;
    }

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke, Description = "distinct rule, exact sets (4 addresses per key)")]
    public int DistinctExact() => Count(_few);

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke, Description = "distinct rule, HyperLogLogs (1,000 addresses per key, seen before)")]
    public int DistinctSketch() => Count(_many);

    private int Count(RequestContext[] requests)
    {
        var over = 0;
        foreach (var request in requests)
        {
            over += _distinct.CountDistinctAsync(_distinct.Policy, request).Result.IsOver ? 1 : 0;
        }

        return over;
    }
}
