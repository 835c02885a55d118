using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// One Redis hash mirrored whole in this replica's memory, so that a request reads it locally and never waits on Redis.
/// </summary>
/// <remarks>
/// <para>
/// The hash is <c>{prefix}:{name}:all</c>. A change is one script that writes or deletes a field (optionally only if
/// the field still holds what the writer read: compare and set), bumps <c>{prefix}:{name}:version</c> and publishes
/// "version field" on <c>{prefix}:{name}</c>, all at once. Each replica applies a published change at once (it reads
/// that one field); a version it missed (a gap, a reconnect) makes it reload the whole hash, and a poll of the version
/// every <see cref="PollInterval"/> reloads it when a change was published but never arrived. So a change reaches every
/// replica within milliseconds, and within two poll intervals (one second) even when its message is lost.
/// </para>
/// </remarks>
/// <typeparam name="T">What a field's value is read into.</typeparam>
internal sealed partial class RedisHashMirror<T> : IAsyncDisposable
    where T : class
{
    /// <summary>How often the version is polled, the safety net under the published changes.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    // KEYS[1] the hash, KEYS[2] the version; ARGV[1] the field, ARGV[2] the value ('' deletes), ARGV[3] the value the
    // field must hold ('' for none) when ARGV[4] is '1', ARGV[5] the channel. Returns -1 when the field did not hold
    // what was expected (nothing written), 0 when it was absent (a delete of nothing writes nothing), 1 when it existed.
    private const string WriteScript = """
        local current = redis.call('HGET', KEYS[1], ARGV[1])
        if ARGV[4] == '1' and (current or '') ~= ARGV[3] then
          return -1
        end
        if ARGV[2] == '' then
          if not current then
            return 0
          end
          redis.call('HDEL', KEYS[1], ARGV[1])
        else
          redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        end
        local version = redis.call('INCR', KEYS[2])
        redis.call('PUBLISH', ARGV[5], version .. ' ' .. ARGV[1])
        if current then
          return 1
        end
        return 0
        """;

    // KEYS[1] the hash, KEYS[2] the version: both at once, so the version names exactly what was read.
    private const string LoadScript = """
        return { redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[1]) }
        """;

    private readonly IConnectionMultiplexer _connection;
    private readonly RedisKey _version;
    private readonly RedisChannel _channel;
    private readonly Func<string, T?, T?> _read;
    private readonly Func<T, bool>? _lapsed;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _sync = new(1, 1);
    private readonly ITimer _poll;
    private readonly CancellationTokenSource _stopping = new();
    private ConcurrentDictionary<string, T> _local = new(StringComparer.Ordinal);
    private long _applied = -1;
    private long _behindSince = -1;
    private ChannelMessageQueue? _messages;

    /// <summary>Starts mirroring <c>{keyPrefix}:{name}:all</c>.</summary>
    /// <param name="connection">The connection, not owned.</param>
    /// <param name="keyPrefix">The Redis store's key prefix.</param>
    /// <param name="name">The hash's name; its keys share one cluster slot.</param>
    /// <param name="read">Reads a field's text into a value, given the value held before (or <see langword="null"/>); <see langword="null"/> when the text is not one.</param>
    /// <param name="lapsed">Whether a value has lapsed and is deleted at the next full reload; <see langword="null"/> when values never lapse.</param>
    /// <param name="logger">Where sync failures are logged.</param>
    public RedisHashMirror(IConnectionMultiplexer connection, string keyPrefix, string name, Func<string, T?, T?> read, Func<T, bool>? lapsed, ILogger logger)
    {
        _connection = connection;
        Hash = $"{keyPrefix}:{{{name}}}:all";
        _version = $"{keyPrefix}:{{{name}}}:version";
        _channel = RedisChannel.Literal($"{keyPrefix}:{name}");
        _read = read;
        _lapsed = lapsed;
        _logger = logger;

        // The poll runs on real time whatever clock the values use: it is the transport's safety net, not a limit.
        _poll = TimeProvider.System.CreateTimer(_ => _ = PollAsync(), null, PollInterval, PollInterval);
        _connection.ConnectionRestored += OnConnectionRestored;
        Ready = Task.Run(StartAsync);
    }

    /// <summary>Called with a field a change arrived for, after it is applied.</summary>
    public Action<string>? Changed { get; init; }

    /// <summary>Called after a full reload.</summary>
    public Action? Reloaded { get; init; }

    /// <summary>The hash.</summary>
    public RedisKey Hash { get; }

    /// <summary>Completes when the first full load is done (or failed: the poll then retries).</summary>
    public Task Ready { get; }

    /// <summary>The mirror: every field's value, as of <see cref="Version"/>.</summary>
    public ConcurrentDictionary<string, T> Local => Volatile.Read(ref _local);

    /// <summary>The version of the hash the mirror reflects; -1 before the first load.</summary>
    public long Version => Interlocked.Read(ref _applied);

    /// <summary>The connection.</summary>
    public IConnectionMultiplexer Connection => _connection;

    /// <summary>
    /// Writes <paramref name="value"/> to <paramref name="field"/> (deletes it when empty), only if the field holds
    /// <paramref name="expected"/> when given (<c>""</c> for absent), and publishes the change.
    /// </summary>
    /// <returns>-1 when the field did not hold <paramref name="expected"/> (nothing written); 0 when it was absent; 1 when it existed.</returns>
    public async Task<long> WriteAsync(string field, string value, string? expected = null)
    {
        var result = await _connection.GetDatabase().ScriptEvaluateAsync(
            WriteScript,
            [Hash, _version],
            [field, value, expected ?? string.Empty, expected is null ? "0" : "1", _channel.ToString()]).ConfigureAwait(false);
        return (long)result;
    }

    /// <summary>Stops mirroring.</summary>
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
    }

    private async Task StartAsync()
    {
        try
        {
            // Subscribed before the first load: a change made between the two is then either in the load or after it.
            var messages = await _connection.GetSubscriber().SubscribeAsync(_channel).ConfigureAwait(false);
            _messages = messages;
            messages.OnMessage(OnMessageAsync);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSyncFailed(_logger, Hash.ToString(), e);
        }

        await ReloadAsync().ConfigureAwait(false);
    }

    /// <summary>A published change "version field": applied when it is the next version, else a full reload.</summary>
    private async Task OnMessageAsync(ChannelMessage message)
    {
        var text = (string?)message.Message ?? string.Empty;
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0 || !long.TryParse(text.AsSpan(0, space), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
        {
            return;
        }

        var field = text[(space + 1)..];
        var reload = false;
        try
        {
            await _sync.WaitAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            var applied = Interlocked.Read(ref _applied);
            if (version <= applied)
            {
                return;
            }

            if (version != applied + 1)
            {
                reload = true;
            }
            else
            {
                var stored = (string?)await _connection.GetDatabase().HashGetAsync(Hash, field).ConfigureAwait(false);
                var local = Volatile.Read(ref _local);
                local.TryGetValue(field, out var previous);
                if (stored is null || _read(stored, previous) is not { } value)
                {
                    local.TryRemove(field, out _);
                }
                else
                {
                    local[field] = value;
                }

                Interlocked.Exchange(ref _applied, version);
                Changed?.Invoke(field);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSyncFailed(_logger, Hash.ToString(), e);
            reload = true;
        }
        finally
        {
            _sync.Release();
        }

        if (reload)
        {
            await ReloadAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Reads every field and the version they are at, in one script, and replaces the mirror with them.</summary>
    private async Task ReloadAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        try
        {
            await _sync.WaitAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        try
        {
            var reply = (RedisResult[])(await _connection.GetDatabase().ScriptEvaluateAsync(LoadScript, [Hash, _version]).ConfigureAwait(false))!;
            var version = (long)reply[0];
            var fields = (RedisResult[])reply[1]!;
            var previous = Volatile.Read(ref _local);
            var next = new ConcurrentDictionary<string, T>(StringComparer.Ordinal);
            var lapsed = new List<RedisValue>();
            for (var i = 0; i + 1 < fields.Length; i += 2)
            {
                var field = (string)fields[i]!;
                previous.TryGetValue(field, out var held);
                if (_read((string?)fields[i + 1] ?? string.Empty, held) is not { } value)
                {
                    continue;
                }

                if (_lapsed?.Invoke(value) == true)
                {
                    lapsed.Add(field);
                }
                else
                {
                    next[field] = value;
                }
            }

            Volatile.Write(ref _local, next);
            Interlocked.Exchange(ref _applied, version);
            Interlocked.Exchange(ref _behindSince, -1);
            Reloaded?.Invoke();
            if (lapsed.Count > 0)
            {
                // Lapsed already, so removing them changes nothing anyone sees: no version, no message.
                _ = _connection.GetDatabase().HashDeleteAsync(Hash, [.. lapsed], CommandFlags.FireAndForget);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException or InvalidCastException)
        {
            LogSyncFailed(_logger, Hash.ToString(), e);
        }
        finally
        {
            _sync.Release();
        }
    }

    /// <summary>
    /// The safety net: the stored version, read once a poll interval. Behind it at two polls in a row (a message lost,
    /// not merely still on its way), or never loaded, the mirror is reloaded whole.
    /// </summary>
    private async Task PollAsync()
    {
        if (_stopping.IsCancellationRequested || !_connection.IsConnected)
        {
            return;
        }

        try
        {
            var stored = (long?)await _connection.GetDatabase().StringGetAsync(_version).ConfigureAwait(false) ?? 0;
            var applied = Interlocked.Read(ref _applied);
            if (applied < 0 || (stored > applied && Interlocked.Read(ref _behindSince) is var since && since >= 0 && since <= applied))
            {
                await ReloadAsync().ConfigureAwait(false);
            }
            else
            {
                Interlocked.Exchange(ref _behindSince, stored > applied ? applied : -1);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSyncFailed(_logger, Hash.ToString(), e);
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        // Messages published while the connection was down are lost: read everything again.
        if (e.ConnectionType == ConnectionType.Subscription || e.ConnectionType == ConnectionType.Interactive)
        {
            _ = ReloadAsync();
        }
    }

    [LoggerMessage(1, LogLevel.Warning, "{Hash} could not be read from Redis; the local copy stays in force and is read again within a second")]
    private static partial void LogSyncFailed(ILogger logger, string hash, Exception exception);
}
