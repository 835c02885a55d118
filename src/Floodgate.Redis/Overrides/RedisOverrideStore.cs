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
/// replica within milliseconds, and within two poll intervals (one second) even when its message is lost.
/// </para>
/// <para>
/// An override's expiry is kept in its value and compared with the replica's clock at each lookup, so it lapses on
/// time everywhere; lapsed fields are deleted at the next full reload.
/// </para>
/// </remarks>
public sealed class RedisOverrideStore : IOverrideStore, IAsyncDisposable, IDisposable
{
    /// <summary>How often the version is polled, the safety net under the published changes.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    private readonly RedisHashMirror<RateLimitOverride> _mirror;
    private readonly bool _ownsConnection;
    private readonly TimeProvider _time;
    private int _disposed;

    // Whether an account's override was seen (sticky), and the mirror's version last scanned for one.
    private volatile bool _hasAccounts;
    private long _scannedVersion = long.MinValue;

    /// <summary>Creates a store on <paramref name="connection"/>, under the Redis store's <paramref name="keyPrefix"/>, and starts mirroring it.</summary>
    public RedisOverrideStore(IConnectionMultiplexer connection, string keyPrefix = "fg", TimeProvider? timeProvider = null, ILogger<RedisOverrideStore>? logger = null)
        : this(connection, false, keyPrefix, timeProvider, logger)
    {
    }

    private RedisOverrideStore(IConnectionMultiplexer connection, bool owns, string keyPrefix, TimeProvider? timeProvider, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(keyPrefix);
        _ownsConnection = owns;
        _time = timeProvider ?? TimeProvider.System;
        _mirror = new RedisHashMirror<RateLimitOverride>(connection, keyPrefix, "overrides", static (text, _) => OverrideJson.Read(text), value => value.IsExpired(_time.GetUtcNow()), logger ?? NullLogger.Instance);
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

    /// <summary>
    /// Starts mirroring the overrides on <paramref name="store"/>'s own connection, which it shares and does not close
    /// (dispose it before the store). A store under Sentinel replaces its connection at a failover, which a mirror's
    /// subscription cannot follow: the overrides then open one connection of their own (as <see cref="Start(RedisStoreOptions, TimeProvider?, ILogger{RedisOverrideStore}?)"/>),
    /// which Sentinel support of the client library keeps on the master.
    /// </summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public static RedisOverrideStore Start(RedisStore store, RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisOverrideStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        return store.SharedConnection is { } connection
            ? new RedisOverrideStore(connection, false, options.KeyPrefix, timeProvider, logger)
            : Start(options, timeProvider, logger);
    }

    /// <summary>Completes when the first full load is done (or failed: the poll then retries).</summary>
    public Task Ready => _mirror.Ready;

    /// <summary>The connection the overrides are read through, which the API keys beside them may share.</summary>
    public IConnectionMultiplexer Connection => _mirror.Connection;

    /// <summary>How many overrides the local mirror holds, lapsed ones not yet removed included.</summary>
    public int Count => _mirror.Local.Count;

    /// <summary>The version of the stored overrides the local mirror reflects; -1 before the first load.</summary>
    public long Version => _mirror.Version;

    /// <inheritdoc/>
    public bool TryFind(string subject, [NotNullWhen(true)] out RateLimitOverride? value)
    {
        if (_mirror.Local.TryGetValue(subject, out value) && (value.ExpiresAt is null || !value.IsExpired(_time.GetUtcNow())))
        {
            return true;
        }

        value = null;
        return false;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Sticky once an account's override is seen. Until then, the mirror is scanned for one once per version it
    /// reaches (a change made on another replica): about a millisecond for 100,000 overrides, once per change.
    /// </remarks>
    public bool HasAccountOverrides
    {
        get
        {
            if (_hasAccounts)
            {
                return true;
            }

            var version = _mirror.Version;
            if (version == Interlocked.Read(ref _scannedVersion))
            {
                return false;
            }

            foreach (var entry in _mirror.Local)
            {
                if (entry.Value.IsAccount)
                {
                    _hasAccounts = true;
                    break;
                }
            }

            Interlocked.Exchange(ref _scannedVersion, version);
            return _hasAccounts;
        }
    }

    /// <inheritdoc/>
    public bool TryFindAccount(string account, [NotNullWhen(true)] out RateLimitOverride? value)
    {
        // The account's key built on the stack and looked up as a span: no allocation per request.
        Span<char> key = stackalloc char[RateLimitOverride.AccountKeyPrefix.Length + RateLimitOverride.MaxSubjectLength];
        var length = RateLimitOverride.WriteAccountKey(account, key);
        if (length >= 0 && _mirror.Local.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key[..length], out value)
            && (value.ExpiresAt is null || !value.IsExpired(_time.GetUtcNow())))
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
        await WriteAsync(value.Key, OverrideJson.Write(value)).WaitAsync(cancellationToken).ConfigureAwait(false);

        // This replica applies its own change now rather than when its message comes back.
        _hasAccounts |= value.IsAccount;
        _mirror.Local[value.Key] = value;
    }

    /// <inheritdoc/>
    public async ValueTask<bool> RemoveAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        var existed = await WriteAsync(subject, string.Empty).WaitAsync(cancellationToken).ConfigureAwait(false);
        _mirror.Local.TryRemove(subject, out var removed);
        return existed && (removed is null || !removed.IsExpired(_time.GetUtcNow()));
    }

    /// <inheritdoc/>
    public async ValueTask<RateLimitOverride?> GetAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        var value = OverrideJson.Read(await _mirror.Connection.GetDatabase().HashGetAsync(_mirror.Hash, subject).WaitAsync(cancellationToken).ConfigureAwait(false));
        return value is null || value.IsExpired(_time.GetUtcNow()) ? null : value;
    }

    /// <inheritdoc/>
    public async ValueTask<IReadOnlyList<RateLimitOverride>> ListAsync(string? after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var now = _time.GetUtcNow();
        var all = new List<RateLimitOverride>();
        await foreach (var entry in _mirror.Connection.GetDatabase().HashScanAsync(_mirror.Hash, pageSize: 1000).WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (OverrideJson.Read(entry.Value) is { } value && !value.IsExpired(now) && (after is null || string.CompareOrdinal(value.Key, after) > 0))
            {
                all.Add(value);
            }
        }

        return [.. all.OrderBy(o => o.Key, StringComparer.Ordinal).Take(limit)];
    }

    /// <summary>Stops mirroring; closes the connection when the store owns it.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Stops mirroring; closes the connection when the store owns it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _mirror.DisposeAsync().ConfigureAwait(false);
        if (_ownsConnection)
        {
            await _mirror.Connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<bool> WriteAsync(string subject, string value) => await _mirror.WriteAsync(subject, value).ConfigureAwait(false) == 1;
}
