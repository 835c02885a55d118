using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Floodgate.Overrides;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// Overrides kept in Redis, shared by every replica and kept across restarts, and mirrored whole in each replica's
/// memory, so that a decision looks one up locally and never waits on Redis.
/// </summary>
/// <remarks>
/// <para>
/// Every override is a field of one hash (<c>{prefix}:{overrides}:all</c>), so a change is one atomic write: a script
/// sets or deletes the field, bumps a version counter and publishes the version and subject on
/// <c>{prefix}:overrides</c>, all at once. Each replica applies a published change at once (it reads that one field);
/// a version it missed (a gap, a reconnect) makes it reload the whole hash, and a poll of the version every
/// <see cref="PollInterval"/> reloads it when a change was published but never arrived. So a change reaches every
/// replica within milliseconds, and within two poll intervals even when its message is lost.
/// </para>
/// <para>
/// An override's expiry is kept in its value and compared with the replica's clock at each lookup, so it lapses on
/// time everywhere; lapsed fields are deleted at the next full reload.
/// </para>
/// </remarks>
public sealed partial class RedisOverrideStore : IOverrideStore, IAsyncDisposable, IDisposable
{
    /// <summary>How often the version is polled, the safety net under the published changes.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    // KEYS[1] the hash, KEYS[2] the version; ARGV[1] the subject, ARGV[2] the value ('' deletes), ARGV[3] the channel.
    private const string WriteScript = """
        local existed
        if ARGV[2] == '' then
          existed = redis.call('HDEL', KEYS[1], ARGV[1])
        else
          existed = 1 - redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        end
        local version = redis.call('INCR', KEYS[2])
        redis.call('PUBLISH', ARGV[3], version .. ' ' .. ARGV[1])
        return existed
        """;

    // KEYS[1] the hash, KEYS[2] the version: both at once, so the version names exactly what was read.
    private const string LoadScript = """
        return { redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1]) }
        """;

    private readonly IConnectionMultiplexer _connection;
    private readonly bool _ownsConnection;
    private readonly RedisKey _hash;
    private readonly RedisKey _version;
    private readonly RedisChannel _channel;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _sync = new(1, 1);
    private readonly ITimer _poll;
    private readonly CancellationTokenSource _stopping = new();
    private ConcurrentDictionary<string, RateLimitOverride> _local = new(StringComparer.Ordinal);
    private long _applied = -1;
    private long _behindSince = -1;
    private ChannelMessageQueue? _messages;

    /// <summary>Creates a store on <paramref name="connection"/>, under the Redis store's <paramref name="keyPrefix"/>, and starts mirroring it.</summary>
    public RedisOverrideStore(IConnectionMultiplexer connection, string keyPrefix = "fg", TimeProvider? timeProvider = null, ILogger<RedisOverrideStore>? logger = null)
        : this(connection, false, keyPrefix, timeProvider, logger)
    {
    }

    private RedisOverrideStore(IConnectionMultiplexer connection, bool owns, string keyPrefix, TimeProvider? timeProvider, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(keyPrefix);
        _connection = connection;
        _ownsConnection = owns;
        _hash = $"{keyPrefix}:{{overrides}}:all";
        _version = $"{keyPrefix}:{{overrides}}:version";
        _channel = RedisChannel.Literal($"{keyPrefix}:overrides");
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;

        // The poll runs on real time whatever the clock given: it is the transport's safety net, not a limit.
        _poll = TimeProvider.System.CreateTimer(_ => _ = PollAsync(), null, PollInterval, PollInterval);
        _connection.ConnectionRestored += OnConnectionRestored;
        Ready = Task.Run(StartAsync);
    }

    /// <summary>
    /// Connects to Redis as <paramref name="options"/> say (its own connection, which it owns) and starts mirroring the
    /// overrides; returns at once, connecting in the background as the Redis store does.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public static RedisOverrideStore Start(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisOverrideStore>? logger = null)
    {
        var configuration = RedisStore.Configure(options, logger);
        var connection = ConnectionMultiplexer.Connect(configuration);
        return new RedisOverrideStore(connection, true, options.KeyPrefix, timeProvider, logger);
    }

    /// <summary>Completes when the first full load is done (or failed: the poll then retries).</summary>
    public Task Ready { get; }

    /// <summary>How many overrides the local mirror holds, lapsed ones not yet removed included.</summary>
    public int Count => Volatile.Read(ref _local).Count;

    /// <summary>The version of the stored overrides the local mirror reflects; -1 before the first load.</summary>
    public long Version => Interlocked.Read(ref _applied);

    /// <inheritdoc/>
    public bool TryFind(string subject, [NotNullWhen(true)] out RateLimitOverride? value)
    {
        if (Volatile.Read(ref _local).TryGetValue(subject, out value) && (value.ExpiresAt is null || !value.IsExpired(_time.GetUtcNow())))
        {
            return true;
        }

        value = null;
        return false;
    }

    /// <inheritdoc/>
    public async ValueTask SetAsync(RateLimitOverride value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        await WriteAsync(value.Subject, OverrideJson.Write(value)).WaitAsync(cancellationToken).ConfigureAwait(false);

        // This replica applies its own change now rather than when its message comes back.
        Volatile.Read(ref _local)[value.Subject] = value;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> RemoveAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        var existed = await WriteAsync(subject, string.Empty).WaitAsync(cancellationToken).ConfigureAwait(false);
        Volatile.Read(ref _local).TryRemove(subject, out var removed);
        return existed && (removed is null || !removed.IsExpired(_time.GetUtcNow()));
    }

    /// <inheritdoc/>
    public async ValueTask<RateLimitOverride?> GetAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        var value = OverrideJson.Read(await _connection.GetDatabase().HashGetAsync(_hash, subject).WaitAsync(cancellationToken).ConfigureAwait(false));
        return value is null || value.IsExpired(_time.GetUtcNow()) ? null : value;
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<RateLimitOverride>> ListAsync(string? after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var now = _time.GetUtcNow();
        var all = new List<RateLimitOverride>();
        await foreach (var entry in _connection.GetDatabase().HashScanAsync(_hash, pageSize: 1000).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (OverrideJson.Read(entry.Value) is { } value && !value.IsExpired(now) && (after is null || string.CompareOrdinal(value.Subject, after) > 0))
            {
                all.Add(value);
            }
        }

        return [.. all.OrderBy(o => o.Subject, StringComparer.Ordinal).Take(limit)];
    }

    /// <summary>Stops mirroring; closes the connection when the store owns it.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops mirroring; closes the connection when the store owns it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _poll.DisposeAsync().ConfigureAwait(false);
        _connection.ConnectionRestored -= OnConnectionRestored;
        if (_messages is { } messages)
        {
            try
            {
                await messages.UnsubscribeAsync().ConfigureAwait(false);
            }
            catch (RedisException)
            {
                // Closing anyway.
            }
        }

        if (_ownsConnection)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<bool> WriteAsync(string subject, string value)
    {
        var result = await _connection.GetDatabase().ScriptEvaluateAsync(WriteScript, [_hash, _version], [subject, value, _channel.ToString()]).ConfigureAwait(false);
        return (long)result == 1;
    }
}
