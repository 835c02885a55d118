using System.Security.Cryptography;
using System.Text;
using Floodgate.Events;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// Threshold events deduplicated in Redis, so that every replica together raises each once per subject, rule, threshold
/// and period: one script sets the event's key if absent (<c>SET NX</c>, expiring when its period ends) and, only then,
/// pushes the event on a list of the latest (<c>{prefix}:{events}:recent</c>, trimmed to <see cref="MemoryThresholdLedger.Kept"/>).
/// </summary>
public sealed class RedisThresholdLedger : IThresholdLedger
{
    // KEYS[1] the event's key, KEYS[2] the list; ARGV[1] its time to live (ms), ARGV[2] the event, ARGV[3] how many kept.
    private const string RecordScript = """
        if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
          redis.call('LPUSH', KEYS[2], ARGV[2])
          redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
          return 1
        end
        return 0
        """;

    private readonly IConnectionMultiplexer _connection;
    private readonly string _prefix;
    private readonly RedisKey _recent;
    private readonly TimeProvider _time;

    /// <summary>Creates a ledger on <paramref name="connection"/>, under the Redis store's <paramref name="keyPrefix"/>.</summary>
    public RedisThresholdLedger(IConnectionMultiplexer connection, string keyPrefix = "fg", TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(keyPrefix);
        _connection = connection;
        _prefix = keyPrefix;
        _recent = $"{keyPrefix}:{{events}}:recent";
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> TryRecordAsync(ThresholdEvent thresholdEvent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(thresholdEvent);
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(thresholdEvent.DedupKey)).AsSpan(0, 16));
        var ttl = (long)Math.Max(1000, (thresholdEvent.PeriodEnd - _time.GetUtcNow()).TotalMilliseconds);
        var result = await _connection.GetDatabase().ScriptEvaluateAsync(
            RecordScript,
            [$"{_prefix}:{{events}}:raised:{hash}", _recent],
            [ttl, thresholdEvent.ToJson(), MemoryThresholdLedger.Kept]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return (long)result == 1;
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<ThresholdEvent>> RecentAsync(int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var values = await _connection.GetDatabase().ListRangeAsync(_recent, 0, limit - 1).WaitAsync(cancellationToken).ConfigureAwait(false);
        return [.. values.Select(v => ThresholdEvent.FromJson(v)).OfType<ThresholdEvent>()];
    }
}
