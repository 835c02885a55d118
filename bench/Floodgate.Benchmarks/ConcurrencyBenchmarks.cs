using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// One concurrency decision and the release of the lease it took, on one key of the in-memory store that already holds
/// <see cref="Held"/> leases (a service tier's capacity in flight). Both run under the shard's lock, so their cost in
/// the number of leases held is time every other key of the shard waits. The held leases time out after an hour, so
/// none expires during a run; each operation adds the latest lease and removes it again.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class ConcurrencyBenchmarks
{
    private const int Operations = 1_000;

    private readonly RateLimitCheck[] _checks = new RateLimitCheck[1];
    private readonly StoreOutcome[] _outcomes = new StoreOutcome[1];
    private MemoryStore _store = null!;

    /// <summary>How many leases the key holds before each measured decision.</summary>
    [Params(10, 10_000)]
    public int Held { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _store = new MemoryStore();
        var limit = Limit.Concurrency(2L * Held, TimeSpan.FromHours(1));
        _checks[0] = new RateLimitCheck(limit, StoreKey.Create("bench", "service-tier"), 1, false);
        for (var i = 0; i < Held; i++)
        {
            _store.Decide(_checks, _outcomes);
            if (_outcomes[0].LeaseId == 0)
            {
                throw new InvalidOperationException("The setup could not take its leases.");
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Decide_and_release()
    {
        var check = _checks[0];
        for (var i = 0; i < Operations; i++)
        {
            _store.Decide(_checks, _outcomes);
            _ = _store.ReleaseAsync(check, _outcomes[0].LeaseId);
        }
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(10).WithInvocationCount(16).WithUnrollFactor(1));
            HideColumns("Error", "StdDev");
        }
    }
}
