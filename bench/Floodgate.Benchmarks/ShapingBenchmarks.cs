using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Benchmarks;

/// <summary>
/// One admitted decision in the memory store per algorithm, on 1,000 existing keys (prehashed) visited in turn: gcra
/// (the baseline), leaky_bucket, sliding_window and sliding_log at 100 and 1,000 a window. Time moves one emission
/// interval per round of the keys, so every decision is admitted and a sliding log is full: each decision drops its
/// oldest entry and appends one, the log's steady state.
/// </summary>
/// <remarks>Run: <c>dotnet run -c Release --project bench/Floodgate.Benchmarks -- --filter '*ShapingBenchmarks*'</c>.</remarks>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class ShapingBenchmarks
{
    private const int Keys = 1_000;
    private const int OperationsPerInvoke = 100_000;
    private const long T0 = 1_800_000_000_000_000;

    private readonly RateLimitCheck[][] _checks = new RateLimitCheck[Keys][];
    private readonly StoreOutcome[] _outcome = new StoreOutcome[1];
    private MemoryStore _store = null!;
    private long _interval;
    private long _now;

    /// <summary>The limit's algorithm and amount.</summary>
    [Params("gcra 100/s", "leaky_bucket 100/s", "sliding_window 100/s", "sliding_log 100/s", "sliding_log 1000/10s")]
    public string Limit { get; set; } = string.Empty;

    [GlobalSetup]
    public void Setup()
    {
        var (algorithm, rate) = (Limit.Split(' ')[0], Rate.Parse(Limit.Split(' ')[1]));
        var limit = algorithm switch
        {
            "gcra" => Limits.Limit.Gcra(rate),
            "leaky_bucket" => Limits.Limit.LeakyBucket(rate),
            "sliding_window" => Limits.Limit.SlidingWindow(rate),
            _ => Limits.Limit.SlidingLog(rate),
        };
        _interval = rate.PeriodMicroseconds / rate.Amount;
        _store = new MemoryStore(new MemoryStoreOptions { MaxEntries = 100_000 });
        for (var k = 0; k < Keys; k++)
        {
            _checks[k] = [new RateLimitCheck(limit, StoreKey.Create("shape", "user-" + k), 1, false)];
        }

        // Fill every key's window, so the measured decisions are those of a full log that turns.
        _now = T0;
        for (var i = 0; i < rate.Amount + 1; i++)
        {
            Round();
        }
    }

    [Benchmark(OperationsPerInvoke = OperationsPerInvoke)]
    public bool Decide()
    {
        var admitted = true;
        for (var i = 0; i < OperationsPerInvoke / Keys; i++)
        {
            admitted &= Round();
        }

        return admitted;
    }

    private bool Round()
    {
        var admitted = true;
        _now += _interval;
        for (var k = 0; k < Keys; k++)
        {
            _store.Decide(_checks[k], _outcome, _now);
            admitted &= _outcome[0].Outcome.IsAllowed;
        }

        return admitted;
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(2).WithIterationCount(8).WithInvocationCount(4).WithUnrollFactor(1).WithToolchain(InProcessEmitToolchain.Instance));
            HideColumns("Error", "StdDev");
        }
    }
}
