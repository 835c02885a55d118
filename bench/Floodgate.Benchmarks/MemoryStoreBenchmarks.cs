using System.Threading.RateLimiting;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.RateLimiting;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// Decisions per second and bytes per decision: Floodgate's in-memory store against System.Threading.RateLimiting's
/// PartitionedRateLimiter with a TokenBucketRateLimiter per partition, over the same string keys and the same limit
/// (1,000,000/s with a burst of a billion, so every decision is admitted and both do their full work).
/// Each invocation makes <see cref="OperationsPerThread"/> decisions on each of <see cref="Threads"/> threads, over
/// the keys in a fixed shuffled order.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class MemoryStoreBenchmarks
{
    private const int OperationsPerThread = 200_000;

    private string[] _keys = [];
    private StoreKey[] _prehashed = [];
    private MemoryStore _store = null!;
    private Limit _limit = null!;
    private FloodgatePartitionedRateLimiter<string> _floodgateLimiter = null!;
    private PartitionedRateLimiter<string> _tokenBucketLimiter = null!;

    /// <summary>How many distinct keys the decisions cycle through.</summary>
    [Params(1, 100_000)]
    public int Keys { get; set; }

    /// <summary>How many threads decide at once.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _keys = Enumerable.Range(0, Keys).Select(i => $"user-{i}").ToArray();
        _limit = Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second), burst: 1_000_000_000);
        _prehashed = _keys.Select(k => StoreKey.Create("bench", k)).ToArray();
        _store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 1_000_000 });
        _floodgateLimiter = new FloodgatePartitionedRateLimiter<string>(new MemoryStore(), key => new FloodgatePartition(key, _limit));
        var options = new TokenBucketRateLimiterOptions
        {
            TokenLimit = 1_000_000_000,
            TokensPerPeriod = 1_000_000,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
        _tokenBucketLimiter = PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetTokenBucketLimiter(key, _ => options));

        // Touch every key once, in the order they were made, so the measured decisions are on existing keys.
        Parallel(MemoryStoreDecide);
        Parallel(MemoryStoreDecidePrehashed);
        Parallel(FloodgateAdapter);
        Parallel(TokenBucketBaseline);

        // Then visit them in a fixed shuffled order, as traffic from many clients arrives. Visiting keys in the order they
        // were made would let the baseline, whose partition objects are allocated in first-use order, walk its memory
        // sequentially behind the hardware prefetcher, which real traffic never does.
        var order = Enumerable.Range(0, Keys).ToArray();
        new Random(42).Shuffle(order);
        _keys = [.. order.Select(i => _keys[i])];
        _prehashed = [.. order.Select(i => _prehashed[i])];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _floodgateLimiter.Dispose();
        _tokenBucketLimiter.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = OperationsPerThread)]
    public void TokenBucket_PartitionedRateLimiter() => Parallel(TokenBucketBaseline);

    [Benchmark(OperationsPerInvoke = OperationsPerThread)]
    public void Floodgate_MemoryStore() => Parallel(MemoryStoreDecide);

    [Benchmark(OperationsPerInvoke = OperationsPerThread)]
    public void Floodgate_MemoryStore_PrehashedKeys() => Parallel(MemoryStoreDecidePrehashed);

    [Benchmark(OperationsPerInvoke = OperationsPerThread)]
    public void Floodgate_PartitionedRateLimiter() => Parallel(FloodgateAdapter);

    private void MemoryStoreDecide(int thread)
    {
        var checks = new RateLimitCheck[1];
        var outcomes = new StoreOutcome[1];
        var keys = _keys;
        for (var i = 0; i < OperationsPerThread; i++)
        {
            // Hashing the key is part of the work, as the partitioned limiters hash theirs.
            checks[0] = new RateLimitCheck(_limit, StoreKey.Create("bench", keys[(i + thread) % keys.Length]), 1, false);
            _store.Decide(checks, outcomes);
        }
    }

    private void MemoryStoreDecidePrehashed(int thread)
    {
        var checks = new RateLimitCheck[1];
        var outcomes = new StoreOutcome[1];
        var keys = _prehashed;
        for (var i = 0; i < OperationsPerThread; i++)
        {
            checks[0] = new RateLimitCheck(_limit, keys[(i + thread) % keys.Length], 1, false);
            _store.Decide(checks, outcomes);
        }
    }

    private void FloodgateAdapter(int thread)
    {
        var keys = _keys;
        for (var i = 0; i < OperationsPerThread; i++)
        {
            using var lease = _floodgateLimiter.AttemptAcquire(keys[(i + thread) % keys.Length]);
        }
    }

    private void TokenBucketBaseline(int thread)
    {
        var keys = _keys;
        for (var i = 0; i < OperationsPerThread; i++)
        {
            using var lease = _tokenBucketLimiter.AttemptAcquire(keys[(i + thread) % keys.Length]);
        }
    }

    private void Parallel(Action<int> body)
    {
        if (Threads == 1)
        {
            body(0);
            return;
        }

        System.Threading.Tasks.Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, body);
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(10).WithInvocationCount(4).WithUnrollFactor(1));
            HideColumns("Error", "StdDev", "RatioSD");
        }
    }
}
