using BenchmarkDotNet.Attributes;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;

/// <summary>
/// One concurrency lease taken and released against a local Redis (set FLOODGATE_REDIS=host:port) while
/// <see cref="HeldLeases"/> other leases of the same key are held: the cost of a service tier's concurrency limit
/// as its capacity grows.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class ConcurrencyBenchmarks
{
    private readonly RateLimitCheck[] _check = new RateLimitCheck[1];
    private readonly StoreOutcome[] _outcomes = new StoreOutcome[1];
    private RedisStore? _store;

    /// <summary>How many leases of the key are held while one more is taken and released.</summary>
    [Params(1, 100, 10_000)]
    public int HeldLeases { get; set; }

    [GlobalSetup]
    public async Task Setup()
    {
        var configuration = Environment.GetEnvironmentVariable("FLOODGATE_REDIS")
            ?? throw new InvalidOperationException("Set FLOODGATE_REDIS to a local redis-server, such as 127.0.0.1:6379.");
        _store = await RedisStore.ConnectAsync(new RedisStoreOptions { Configuration = configuration, KeyPrefix = "bdn" + Guid.NewGuid().ToString("N")[..6], Timeout = TimeSpan.FromSeconds(5) });
        _check[0] = new RateLimitCheck(Limit.Concurrency(HeldLeases + 1_000, TimeSpan.FromHours(1)), StoreKey.Create("capacity", "orders"), 1, false);
        for (var i = 0; i < HeldLeases; i++)
        {
            await _store.DecideAsync(_check, _outcomes);
            if (!_outcomes[0].Outcome.IsAllowed)
            {
                throw new InvalidOperationException($"Lease {i} was refused while filling the key.");
            }
        }
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
    }

    [Benchmark(Description = "concurrency: take and release one lease")]
    public async Task TakeAndRelease()
    {
        await _store!.DecideAsync(_check, _outcomes);
        var outcome = _outcomes[0];
        if (!outcome.Outcome.IsAllowed)
        {
            throw new InvalidOperationException("The lease was refused.");
        }

        await _store.ReleaseAsync(_check[0], outcome.LeaseId);
    }
}
