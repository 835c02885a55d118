using BenchmarkDotNet.Attributes;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;

/// <summary>
/// One decision against a local Redis (set FLOODGATE_REDIS=host:port): a strict round trip, and the local answers of
/// the over-limit cache and of a leased slice, both through <c>DecideAsync</c> and through the synchronous
/// <c>TryDecide</c> that the engine's front doors ask first.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class StoreBenchmarks
{
    private readonly RateLimitCheck[] _strict = new RateLimitCheck[1];
    private readonly RateLimitCheck[] _over = new RateLimitCheck[1];
    private readonly RateLimitCheck[] _leased = new RateLimitCheck[1];
    private readonly StoreOutcome[] _outcomes = new StoreOutcome[1];
    private RedisStore? _store;

    [GlobalSetup]
    public async Task Setup()
    {
        var configuration = Environment.GetEnvironmentVariable("FLOODGATE_REDIS")
            ?? throw new InvalidOperationException("Set FLOODGATE_REDIS to a local redis-server, such as 127.0.0.1:6379.");
        _store = await RedisStore.ConnectAsync(new RedisStoreOptions { Configuration = configuration, KeyPrefix = "bdn" + Guid.NewGuid().ToString("N")[..6], Timeout = TimeSpan.FromSeconds(1) });
        _strict[0] = new RateLimitCheck(Limit.Gcra(new Rate(900_000_000, 1, RateUnit.Hour)), StoreKey.Create("strict", "alice"), 1, false);
        _over[0] = new RateLimitCheck(Limit.Gcra(new Rate(1, 1, RateUnit.Day)), StoreKey.Create("over", "alice"), 1, false);
        _leased[0] = new RateLimitCheck(Limit.Gcra(new Rate(900_000_000, 1, RateUnit.Hour)).WithLeasedSlice(1_000_000), StoreKey.Create("leased", "everything"), 1, false);
        await _store.DecideAsync(_over, _outcomes);
        await _store.DecideAsync(_over, _outcomes);
        await _store.DecideAsync(_leased, _outcomes);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    [Benchmark(Description = "strict round trip (gcra)")]
    public ValueTask Strict() => _store!.DecideAsync(_strict, _outcomes);

    [Benchmark(Description = "over-limit cache answer")]
    public ValueTask OverLimit() => _store!.DecideAsync(_over, _outcomes);

    [Benchmark(Description = "leased slice answer")]
    public ValueTask Leased() => _store!.DecideAsync(_leased, _outcomes);

    [Benchmark(Description = "over-limit cache answer, TryDecide")]
    public bool OverLimitSync() => _store!.TryDecide(_over, _outcomes) || Refill(_over);

    // A slice lasts a few seconds at this rate: when it is spent, the next one is leased through Redis (once in a
    // million decisions, so its cost vanishes from the mean).
    [Benchmark(Description = "leased slice answer, TryDecide")]
    public bool LeasedSync() => _store!.TryDecide(_leased, _outcomes) || Refill(_leased);

    private bool Refill(RateLimitCheck[] checks)
    {
        _store!.DecideAsync(checks, _outcomes).AsTask().GetAwaiter().GetResult();
        return false;
    }
}
