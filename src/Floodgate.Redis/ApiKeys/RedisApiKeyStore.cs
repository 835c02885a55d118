using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Floodgate.ApiKeys;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// API keys kept in Redis, shared by every replica and kept across restarts, and mirrored whole in each replica's memory,
/// so that verifying a key is one hash and a local lookup, never a round trip.
/// </summary>
/// <remarks>
/// <para>
/// Every key's record (its hash, never its secret) is a field of one hash, <c>{prefix}:{apikeys}:all</c>, mirrored as
/// the overrides are: a change is one script that writes, bumps a version and publishes; each replica applies it within
/// milliseconds, and a one-second version poll catches a lost message. A revoked key is refused by every replica within
/// a second.
/// </para>
/// <para>
/// A key not in the mirror (created on another replica a moment ago, or unknown) is read from Redis once; an id not
/// found there is remembered in a negative cache of at most <see cref="MaxUnknown"/> ids for <see cref="UnknownTtl"/>
/// (cleared when a change names the id, and at each full reload), so a flood of one unknown key costs one lookup.
/// </para>
/// <para>
/// Last uses are noted in memory at each use and written every <see cref="LastUsedFlushInterval"/> in one script call
/// to <c>{prefix}:{apikeys}:used</c> (the latest wins across replicas): no write per request.
/// </para>
/// </remarks>
public sealed partial class RedisApiKeyStore : IApiKeyStore, IAsyncDisposable, IDisposable
{
    /// <summary>The most unknown ids remembered; past it the negative cache starts over.</summary>
    public const int MaxUnknown = 10_000;

    /// <summary>How long an unknown id is remembered.</summary>
    public static readonly TimeSpan UnknownTtl = TimeSpan.FromSeconds(30);

    /// <summary>How often the last uses noted are written to Redis.</summary>
    public static readonly TimeSpan LastUsedFlushInterval = TimeSpan.FromSeconds(5);

    // KEYS[1] the last uses' hash; ARGV id, milliseconds, id, milliseconds…: each raised, never lowered.
    private const string FlushScript = """
        for i = 1, #ARGV, 2 do
          local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
          if tonumber(ARGV[i + 1]) > stored then
            redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
          end
        end
        return 0
        """;

    private readonly RedisHashMirror<ApiKeyEntry> _mirror;
    private readonly bool _ownsConnection;
    private readonly RedisKey _used;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ITimer _flush;
    private readonly ConcurrentDictionary<string, long> _unknown = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _flushed = new(StringComparer.Ordinal);
    private int _disposed;

    /// <summary>Creates a store on <paramref name="connection"/>, under the Redis store's <paramref name="keyPrefix"/>, and starts mirroring it.</summary>
    public RedisApiKeyStore(IConnectionMultiplexer connection, string keyPrefix = "fg", TimeProvider? timeProvider = null, ILogger<RedisApiKeyStore>? logger = null)
        : this(connection, false, keyPrefix, timeProvider, logger)
    {
    }

    private RedisApiKeyStore(IConnectionMultiplexer connection, bool owns, string keyPrefix, TimeProvider? timeProvider, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(keyPrefix);
        _ownsConnection = owns;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _used = $"{keyPrefix}:{{apikeys}}:used";
        _mirror = new RedisHashMirror<ApiKeyEntry>(connection, keyPrefix, "apikeys", Read, null, _logger)
        {
            Changed = id => _unknown.TryRemove(id, out _),
            Reloaded = _unknown.Clear,
        };

        // On real time whatever the clock given: a batching interval, not a limit.
        _flush = TimeProvider.System.CreateTimer(_ => _ = FlushAsync(), null, LastUsedFlushInterval, LastUsedFlushInterval);
    }

    /// <summary>
    /// Connects to Redis as <paramref name="options"/> say (its own connection, which it owns) and starts mirroring the
    /// keys; returns at once, connecting in the background as the Redis store does.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public static RedisApiKeyStore Start(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisApiKeyStore>? logger = null)
    {
        var configuration = RedisStore.Configure(options, logger);
        var connection = ConnectionMultiplexer.Connect(configuration);
        return new RedisApiKeyStore(connection, true, options.KeyPrefix, timeProvider, logger);
    }

    /// <summary>Completes when the first full load is done (or failed: the poll then retries).</summary>
    public Task Ready => _mirror.Ready;

    /// <summary>How many keys the local mirror holds.</summary>
    public int Count => _mirror.Local.Count;

    /// <summary>How many unknown ids the negative cache holds.</summary>
    public int UnknownCount => _unknown.Count;

    /// <summary>The version of the stored keys the local mirror reflects; -1 before the first load.</summary>
    public long Version => _mirror.Version;

    /// <inheritdoc/>
    public bool TryFind(ReadOnlySpan<char> id, [NotNullWhen(true)] out ApiKeyEntry? entry) =>
        _mirror.Local.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(id, out entry);

    /// <inheritdoc/>
    public async ValueTask<ApiKeyEntry?> FindAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (_mirror.Local.TryGetValue(id, out var entry))
        {
            return entry;
        }

        var now = _time.GetUtcNow().UtcTicks;
        if (_unknown.TryGetValue(id, out var until) && now < until)
        {
            return null;
        }

        // Not mirrored (yet): read once. Not added to the mirror, which only changes in version order, so a key revoked
        // meanwhile cannot come back.
        var record = ApiKeyJson.Read(await _mirror.Connection.GetDatabase().HashGetAsync(_mirror.Hash, id).WaitAsync(cancellationToken).ConfigureAwait(false));
        if (record is null)
        {
            if (_unknown.Count >= MaxUnknown)
            {
                _unknown.Clear();
            }

            _unknown[id] = now + UnknownTtl.Ticks;
            return null;
        }

        return new ApiKeyEntry(record);
    }

    /// <inheritdoc/>
    public async ValueTask<bool> CreateAsync(ApiKeyRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (await _mirror.WriteAsync(record.Id, ApiKeyJson.Write(record), expected: string.Empty).WaitAsync(cancellationToken).ConfigureAwait(false) < 0)
        {
            return false;
        }

        // This replica applies its own change now rather than when its message comes back.
        _mirror.Local[record.Id] = new ApiKeyEntry(record);
        _unknown.TryRemove(record.Id, out _);
        return true;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> ReplaceAsync(ApiKeyRecord current, ApiKeyRecord next, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(next);
        if (!string.Equals(current.Id, next.Id, StringComparison.Ordinal))
        {
            throw new ArgumentException("A replacement keeps the key's id.", nameof(next));
        }

        if (await _mirror.WriteAsync(next.Id, ApiKeyJson.Write(next), expected: ApiKeyJson.Write(current)).WaitAsync(cancellationToken).ConfigureAwait(false) < 0)
        {
            return false;
        }

        var local = _mirror.Local;
        local.TryGetValue(next.Id, out var held);
        local[next.Id] = new ApiKeyEntry(next, held?.LastUsedAt);
        return true;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        var existed = await _mirror.WriteAsync(id, string.Empty).WaitAsync(cancellationToken).ConfigureAwait(false) == 1;
        _mirror.Local.TryRemove(id, out _);
        _flushed.TryRemove(id, out _);
        if (existed)
        {
            _ = _mirror.Connection.GetDatabase().HashDeleteAsync(_used, id, CommandFlags.FireAndForget);
        }

        return existed;
    }

    /// <inheritdoc/>
    public async ValueTask<ApiKeyEntry?> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        var database = _mirror.Connection.GetDatabase();
        var record = ApiKeyJson.Read(await database.HashGetAsync(_mirror.Hash, id).WaitAsync(cancellationToken).ConfigureAwait(false));
        if (record is null)
        {
            return null;
        }

        var used = (long?)await database.HashGetAsync(_used, id).WaitAsync(cancellationToken).ConfigureAwait(false) ?? 0;
        return WithLastUse(record, used);
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<ApiKeyEntry>> ListAsync(string? subject, string? after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var database = _mirror.Connection.GetDatabase();
        var records = new List<ApiKeyRecord>();
        await foreach (var field in database.HashScanAsync(_mirror.Hash, pageSize: 1000).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (ApiKeyJson.Read(field.Value) is { } record
                && (subject is null || string.Equals(record.Subject, subject, StringComparison.Ordinal))
                && (after is null || string.CompareOrdinal(record.Id, after) > 0))
            {
                records.Add(record);
            }
        }

        var page = records.OrderBy(r => r.Id, StringComparer.Ordinal).Take(limit).ToList();
        if (page.Count == 0)
        {
            return [];
        }

        var used = await database.HashGetAsync(_used, [.. page.Select(r => (RedisValue)r.Id)]).WaitAsync(cancellationToken).ConfigureAwait(false);
        return [.. page.Select((r, i) => WithLastUse(r, (long?)used[i] ?? 0))];
    }

    /// <summary>
    /// Writes the last uses noted since the last flush, in one script call; called every
    /// <see cref="LastUsedFlushInterval"/> and when the store is disposed.
    /// </summary>
    public async Task FlushAsync()
    {
        var pending = new List<RedisValue>();
        foreach (var (id, entry) in _mirror.Local)
        {
            var used = entry.LastUsedUnixMilliseconds;
            if (used > 0 && used > _flushed.GetValueOrDefault(id))
            {
                pending.Add(id);
                pending.Add(used);
            }
        }

        if (pending.Count == 0 || !_mirror.Connection.IsConnected)
        {
            return;
        }

        try
        {
            await _mirror.Connection.GetDatabase().ScriptEvaluateAsync(FlushScript, [_used], [.. pending]).ConfigureAwait(false);
            for (var i = 0; i < pending.Count; i += 2)
            {
                _flushed[(string)pending[i]!] = (long)pending[i + 1];
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Tried again at the next flush: a last use is a convenience, never worth a request's time.
            LogFlushFailed(_logger, e);
        }
    }

    /// <summary>Stops mirroring, after writing the last uses noted; closes the connection when the store owns it.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops mirroring, after writing the last uses noted; closes the connection when the store owns it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _flush.DisposeAsync().ConfigureAwait(false);
        await FlushAsync().ConfigureAwait(false);
        await _mirror.DisposeAsync().ConfigureAwait(false);
        if (_ownsConnection)
        {
            await _mirror.Connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A mirrored entry: a new record keeps the last use noted on the entry it replaces.</summary>
    private static ApiKeyEntry? Read(string text, ApiKeyEntry? held) =>
        ApiKeyJson.Read(text) is { } record ? new ApiKeyEntry(record, held?.LastUsedAt) : null;

    /// <summary>An entry of <paramref name="record"/>, last used at the later of what Redis and this replica's mirror hold.</summary>
    private ApiKeyEntry WithLastUse(ApiKeyRecord record, long storedMilliseconds)
    {
        var local = _mirror.Local.TryGetValue(record.Id, out var held) ? held.LastUsedUnixMilliseconds : 0;
        var last = Math.Max(local, storedMilliseconds);
        return new ApiKeyEntry(record, last > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(last) : null);
    }

    [LoggerMessage(2, LogLevel.Warning, "The API keys' last uses could not be written to Redis; they are tried again at the next flush")]
    private static partial void LogFlushFailed(ILogger logger, Exception exception);
}
