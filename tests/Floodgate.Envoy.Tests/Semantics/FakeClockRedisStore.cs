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
