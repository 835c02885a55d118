using System.Globalization;
using Floodgate.Abuse;
using Floodgate.Keys;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// Distinct sets in Redis, shared by every replica: a set of the values' hashes up to
/// <see cref="DistinctSketch.ExactCapacity"/> (exact), then a HyperLogLog (PFADD, PFCOUNT: 16,384 registers, standard
/// error 0.81 %), one key per rule key and window, expiring with its window.
/// </summary>
/// <remarks>
/// Each count is one script call (SADD and SCARD, or PFADD and PFCOUNT, and the switch from one to the other when the
/// set passes the capacity), sent when the request is decided and awaited with the tiers' decision, so it adds a
/// command to Redis but no round trip the request waits for in turn. A call that has not answered within
/// <see cref="Timeout"/> fails, and the engine lets the request through uncounted.
/// </remarks>
public sealed class RedisDistinctStore : IDistinctStore
{
    // KEYS set, hll; ARGV value, exact capacity, expiry (Unix ms). The distinct count after adding the value.
    internal const string AddScript = """
        if redis.call('EXISTS', KEYS[2]) == 1 then
          redis.call('PFADD', KEYS[2], ARGV[1])
          return redis.call('PFCOUNT', KEYS[2])
        end
        redis.call('SADD', KEYS[1], ARGV[1])
        local n = redis.call('SCARD', KEYS[1])
        if n <= tonumber(ARGV[2]) then
          redis.call('PEXPIREAT', KEYS[1], ARGV[3])
          return n
        end
        local members = redis.call('SMEMBERS', KEYS[1])
        redis.call('PFADD', KEYS[2], unpack(members))
        redis.call('PEXPIREAT', KEYS[2], ARGV[3])
        redis.call('DEL', KEYS[1])
        return redis.call('PFCOUNT', KEYS[2])
        """;

    private readonly IConnectionMultiplexer _connection;
    private readonly string _prefix;

    /// <summary>Creates a store on <paramref name="connection"/> whose keys start with <paramref name="keyPrefix"/>.</summary>
    public RedisDistinctStore(IConnectionMultiplexer connection, string keyPrefix = "fg")
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrWhiteSpace(keyPrefix);
        _connection = connection;
        _prefix = keyPrefix + ":dst:{";
    }

    /// <summary>How long a count may take before it fails (and the request goes on uncounted). Default 250 ms.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <inheritdoc/>
    public async ValueTask<long> AddAsync(StoreKey key, ulong value, DateTimeOffset windowStart, TimeSpan period, CancellationToken cancellationToken = default)
    {
        // Both keys in one hash slot (the braces), so a cluster runs the script on one node.
        var name = string.Create(CultureInfo.InvariantCulture, $"{_prefix}{key.ValueHex}:{windowStart.ToUnixTimeMilliseconds()}}}");
        RedisKey[] keys = [name + ":s", name + ":h"];
        RedisValue[] args = [value, DistinctSketch.ExactCapacity, (windowStart + period).ToUnixTimeMilliseconds() + 1000];
        var result = await _connection.GetDatabase().ScriptEvaluateAsync(AddScript, keys, args).WaitAsync(Timeout, cancellationToken).ConfigureAwait(false);
        return (long)result;
    }
}
