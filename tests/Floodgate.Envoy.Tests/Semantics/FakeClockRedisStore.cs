using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Envoy.Tests;

/// <summary>Passes the fake clock's now to the Redis script instead of the server's TIME.</summary>
internal sealed class FakeClockRedisStore(RedisStore inner, FakeTimeProvider time) : DelegatingStore<RedisStore>(inner)
{
    private long Now => (time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    public override ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Inner.DecideAsync(checks, outcomes, Now, cancellationToken);

    public override ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Inner.DecideStagesAsync(checks, stageEnds, outcomes, Now, cancellationToken);

    // The inner store would answer from its over-limit cache on the real clock.
    public override bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => false;
}

/// <summary>
/// Opens fake-clock stores on one redis-server, each under a fresh key prefix, and disposes them all: the one owner of
/// the Redis stores of the Redis semantics tests.
/// </summary>
internal sealed class FakeClockRedisStores(RedisServer server, string prefix) : IDisposable
{
    private readonly List<RedisStore> _stores = [];

    /// <summary>A store that decides at <paramref name="time"/>'s now, failing closed, under a prefix of its own.</summary>
    public IRateLimitStore Create(FakeTimeProvider time) =>
        new FakeClockRedisStore(Add(RedisStore.Connect(new RedisStoreOptions
        {
            Configuration = server.Configuration,
            KeyPrefix = NewPrefix(),
            Timeout = TimeSpan.FromSeconds(5),
            FailureMode = StoreFailureMode.Closed,
        }, time)), time);

    /// <summary>A fresh key prefix, so no two stores (or tests) see each other's keys.</summary>
    public string NewPrefix() => prefix + Guid.NewGuid().ToString("N")[..10];

    /// <summary>Takes <paramref name="store"/> to dispose with the others.</summary>
    public RedisStore Add(RedisStore store)
    {
        lock (_stores)
        {
            _stores.Add(store);
        }

        return store;
    }

    public void Dispose()
    {
        lock (_stores)
        {
            foreach (var store in _stores)
            {
                store.Dispose();
            }

            _stores.Clear();
        }
    }
}
