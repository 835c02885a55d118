using System.Diagnostics.CodeAnalysis;
using System.Net;
using Floodgate.Bans;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// Bans kept in Redis, shared by every replica and kept across restarts, and mirrored whole in each replica's memory
/// (<see cref="BanTable"/>), so that a request looks one up locally and never waits on Redis.
/// </summary>
/// <remarks>
/// <para>
/// Every ban is a field of one hash (<c>{prefix}:{bans}:all</c>, its JSON) and a member of one sorted set scored by its
/// expiry (<c>{prefix}:{bans}:expiry</c>): the index that makes listing cheap. Each write is one script that first prunes
/// the lapsed bans (the sorted set's lowest scores), refuses a new ban beyond <see cref="MaxBans"/>, writes, bumps a
/// version and publishes it on <c>{prefix}:bans</c>. A replica reloads the set when a version is published, and a poll
/// of the version every <see cref="PollInterval"/> catches a message it missed: a change reaches every replica within
/// milliseconds, and within two poll intervals (one second) when its message is lost.
/// </para>
/// </remarks>
public sealed partial class RedisBanStore : IBanStore, IAsyncDisposable, IDisposable
{
    /// <summary>How often the version is polled, the safety net under the published changes.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    // Removes the bans lapsed at ARGV[1] (ms) from KEYS[1] (hash) and KEYS[2] (index); shared by every script.
    private const string Prune = """
        local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
        for i = 1, #lapsed, 500 do
          redis.call('HDEL', KEYS[1], unpack(lapsed, i, math.min(i + 499, #lapsed)))
        end
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])

        """;

    // KEYS hash, index, version; ARGV now, id, value, expiry, max, channel. -1 when full, else the version.
    private const string AddScript = Prune + """
        if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
          return -1
        end
        redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
        redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[6], version)
        return version
        """;

    // KEYS hash, index, version; ARGV now, id, channel. The ban removed, or false.
    private const string RemoveScript = Prune + """
        local value = redis.call('HGET', KEYS[1], ARGV[2])
        if not value then
          return false
        end
        redis.call('HDEL', KEYS[1], ARGV[2])
        redis.call('ZREM', KEYS[2], ARGV[2])
        local version = redis.call('INCR', KEYS[3])
        redis.call('PUBLISH', ARGV[3], version)
        return value
        """;

    // KEYS hash, index, version; ARGV now. The version and every ban, read at once.
    private const string LoadScript = Prune + """
        return { redis.call('GET', KEYS[3]) or '0', redis.call('HVALS', KEYS[1]) }
        """;

    private readonly IConnectionMultiplexer _connection;
    private readonly RedisKey[] _keys;
    private readonly RedisChannel _channel;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly BanTable _local = new();
    private readonly SemaphoreSlim _sync = new(1, 1);
    private readonly ITimer _poll;
    private readonly CancellationTokenSource _stopping = new();
    private long _applied = -1;
    private int _reloadsWanted;
    private ChannelMessageQueue? _messages;

    /// <summary>Creates a store on <paramref name="connection"/>, under the Redis store's <paramref name="keyPrefix"/>, and starts mirroring it.</summary>
    public RedisBanStore(IConnectionMultiplexer connection, string keyPrefix = "fg", TimeProvider? timeProvider = null, ILogger<RedisBanStore>? logger = null, int maxBans = MemoryBanStore.DefaultMaxBans)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(keyPrefix);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBans, 1);
        _connection = connection;
        MaxBans = maxBans;
        _keys = [$"{keyPrefix}:{{bans}}:all", $"{keyPrefix}:{{bans}}:expiry", $"{keyPrefix}:{{bans}}:version"];
        _channel = RedisChannel.Literal($"{keyPrefix}:bans");
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;

        // The poll runs on real time whatever the clock given: it is the transport's safety net, not a limit.
        _poll = TimeProvider.System.CreateTimer(_ => _ = PollAsync(), null, PollInterval, PollInterval);
        _connection.ConnectionRestored += OnConnectionRestored;
        Ready = Task.Run(StartAsync);
    }

    /// <summary>Completes when the first full load is done (or failed: the poll then retries).</summary>
    public Task Ready { get; }

    /// <inheritdoc/>
    public int MaxBans { get; }

    /// <summary>The version of the stored bans the local mirror reflects; -1 before the first load.</summary>
    public long Version => Interlocked.Read(ref _applied);

    /// <inheritdoc/>
    public bool TryFind(IPAddress address, [NotNullWhen(true)] out Ban? ban) => _local.TryFind(address, _time.GetUtcNow(), out ban);

    /// <inheritdoc/>
    public bool TryFindSubject(string subject, [NotNullWhen(true)] out Ban? ban) => _local.TryFindSubject(subject, _time.GetUtcNow(), out ban);

    /// <inheritdoc/>
    public async ValueTask<bool> AddAsync(Ban ban, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ban);
        var result = await _connection.GetDatabase().ScriptEvaluateAsync(
            AddScript,
            _keys,
            [Now(), ban.Id, BanJson.Write(ban), ban.ExpiresAt.ToUnixTimeMilliseconds(), MaxBans, _channel.ToString()]).WaitAsync(cancellationToken).ConfigureAwait(false);
        if ((long)result < 0)
        {
            return false;
        }

        // This replica applies its own change now rather than when its message comes back; when the mirror was at the
        // version just before, it is now at this one, and the message costs no reload.
        _local.Set(ban);
        var version = (long)result;
        Interlocked.CompareExchange(ref _applied, version, version - 1);
        return true;
    }

    /// <inheritdoc/>
    public async ValueTask<Ban?> RemoveAsync(BanKind kind, string target, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        var id = Ban.KindName(kind) + ":" + target;
        var result = await _connection.GetDatabase().ScriptEvaluateAsync(RemoveScript, _keys, [Now(), id, _channel.ToString()]).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (_local.Get(kind, target) is { } held)
        {
            _local.Remove(held);
        }

        return result.IsNull ? null : BanJson.Read((string?)result);
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<Ban>> ListAsync(int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var (_, bans) = await LoadAsync(cancellationToken).ConfigureAwait(false);
        return [.. bans.OrderByDescending(b => b.CreatedAt).ThenBy(b => b.Id, StringComparer.Ordinal).Take(limit)];
    }

    /// <summary>Stops mirroring; the connection is the caller's.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops mirroring; the connection is the caller's.</summary>
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

    private long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Every ban in force and the version they are at, read in one script that prunes the lapsed ones first.</summary>
    private async Task<(long Version, List<Ban> Bans)> LoadAsync(CancellationToken cancellationToken)
    {
        var reply = (RedisResult[])(await _connection.GetDatabase().ScriptEvaluateAsync(LoadScript, _keys, [Now()]).WaitAsync(cancellationToken).ConfigureAwait(false))!;
        var now = _time.GetUtcNow();
        var bans = new List<Ban>();
        foreach (var value in (RedisResult[])reply[1]!)
        {
            if (BanJson.Read((string?)value) is { } ban && !ban.IsExpired(now))
            {
                bans.Add(ban);
            }
        }

        return ((long)reply[0], bans);
    }
}
