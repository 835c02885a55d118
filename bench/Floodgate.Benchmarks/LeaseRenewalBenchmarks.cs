using System.Net;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// What lease renewal adds. On the decision path: a request with a concurrency lease, evaluated and released by the
/// engine on the memory store, without and with <see cref="RateLimitEngine.RenewLeases"/> between (listing the request
/// in the renewer and unlisting it at release, as the middleware does), while <see cref="Held"/> other requests are
/// listed. Off it: one renewal by the memory store of a lease among <see cref="Held"/> of its key, under the shard's lock.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class LeaseRenewalBenchmarks
{
    private const int Operations = 20_000;

    private readonly RequestContext _request = new() { Path = "/stream", Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7") };
    private readonly List<RateLimitResult> _held = [];
    private RateLimitEngine _engine = null!;
    private MemoryStore _store = null!;
    private MemoryStore _renewing = null!;
    private RateLimitCheck _check;
    private long[] _leaseIds = [];

    /// <summary>How many requests (and leases of the key) are held and listed while the measured ones come and go.</summary>
    [Params(10, 10_000)]
    public int Held { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _store = new MemoryStore();
        var limit = Limit.Concurrency(2L * Held, TimeSpan.FromHours(1));
        _engine = new RateLimitEngine(new RateLimitPolicy([new RateLimitRule("streams", RateLimitTier.Global, limit)]), _store);
        for (var i = 0; i < Held; i++)
        {
            var held = _engine.EvaluateAsync(_request).AsTask().GetAwaiter().GetResult();
            _engine.RenewLeases(held);
            _held.Add(held);
        }

        // The renewal case's leases, in a store that reads the clock at every call, so each renewal moves its lease (to
        // the latest expiry, the most a renewal moves one in the heaps) rather than finding it renewed this clock tick.
        _renewing = new MemoryStore(new MemoryStoreOptions { PreciseClock = true });
        _check = new RateLimitCheck(limit, StoreKey.Create("bench", "renewed"), 1, false);
        var outcomes = new StoreOutcome[1];
        _leaseIds = new long[Held];
        for (var i = 0; i < Held; i++)
        {
            _renewing.Decide([_check], outcomes);
            _leaseIds[i] = outcomes[0].LeaseId;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var held in _held)
        {
            _engine.ReleaseAsync(held).AsTask().GetAwaiter().GetResult();
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public void Evaluate_and_release()
    {
        for (var i = 0; i < Operations; i++)
        {
            var result = _engine.EvaluateAsync(_request).Result;
            _ = _engine.ReleaseAsync(result);
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Evaluate_renew_and_release()
    {
        for (var i = 0; i < Operations; i++)
        {
            var result = _engine.EvaluateAsync(_request).Result;
            _engine.RenewLeases(result);
            _ = _engine.ReleaseAsync(result);
        }
    }

    [Benchmark(OperationsPerInvoke = Operations)]
    public void Renew_one_lease_in_the_store()
    {
        for (var i = 0; i < Operations; i++)
        {
            _ = _renewing.RenewAsync(_check, _leaseIds[i % _leaseIds.Length]);
        }
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(20).WithInvocationCount(16).WithUnrollFactor(1));
            HideColumns("Error", "StdDev");
        }
    }
}
