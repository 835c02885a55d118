using System.Diagnostics.Metrics;

namespace Floodgate.Redis;

/// <summary>
/// What a <see cref="RedisStore"/> counts: reported on its meter, and the totals read back by its properties
/// (<see cref="RedisStore.RoundTrips"/>, <see cref="RedisStore.LocalDecisions"/>, <see cref="RedisStore.Failures"/>).
/// </summary>
internal sealed class RedisStoreMetrics
{
    private readonly Counter<long> _roundTrips;
    private readonly Counter<long> _localDecisions;
    private readonly Counter<long> _failures;
    private readonly Counter<long> _fallbacks;
    private long _roundTripCount;
    private long _localDecisionCount;
    private long _failureCount;
    private long _lateCount;

    public RedisStoreMetrics(Meter meter)
    {
        _roundTrips = meter.CreateCounter<long>("floodgate.redis.round_trips", "{call}", "Script calls made: one per decision on a single node; on a cluster one per hash slot and stage.");
        Runs = meter.CreateCounter<long>("floodgate.redis.runs", "{run}", "Runs of the decision script sent to a single node: concurrent decisions' calls share runs.");
        _localDecisions = meter.CreateCounter<long>("floodgate.redis.local_decisions", "{check}", "Checks answered without Redis, by source.");
        _failures = meter.CreateCounter<long>("floodgate.redis.failures", "{failure}", "Failed or timed-out Redis calls, by reason: timeout and error are Redis's (and count towards the breakers); late, given up on because this process was late (thread pool or CPU starved), is not; circuit_open, skipped by an open breaker; release, a lease release that failed.");
        _fallbacks = meter.CreateCounter<long>("floodgate.redis.fallback_decisions", "{check}", "Checks answered by the failure mode, by mode.");
    }

    /// <summary>The runs of the script sent to a single node, counted by the <see cref="CallCoalescer"/> that sends them.</summary>
    public Counter<long> Runs { get; }

    public long RoundTrips => Volatile.Read(ref _roundTripCount);

    public long LocalDecisions => Volatile.Read(ref _localDecisionCount);

    public long Failures => Volatile.Read(ref _failureCount);

    /// <summary>The failures this process was to blame for (reason <c>late</c>), among <see cref="Failures"/>.</summary>
    public long Late => Volatile.Read(ref _lateCount);

    public void CountRoundTrip()
    {
        Interlocked.Increment(ref _roundTripCount);
        _roundTrips.Add(1);
    }

    public void CountFailure(string reason)
    {
        Interlocked.Increment(ref _failureCount);
        if (reason == "late")
        {
            Interlocked.Increment(ref _lateCount);
        }

        _failures.Add(1, new KeyValuePair<string, object?>("reason", reason));
    }

    public void CountLocal(int count, string source)
    {
        Interlocked.Add(ref _localDecisionCount, count);
        _localDecisions.Add(count, new KeyValuePair<string, object?>("source", source));
    }

    public void CountFallbacks(int count, string mode)
    {
        if (count > 0)
        {
            _fallbacks.Add(count, new KeyValuePair<string, object?>("mode", mode));
        }
    }
}
