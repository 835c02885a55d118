using System.Globalization;
using Floodgate.Keys;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Release notices: release.lua publishes the release of a lease of a concurrency limit that queues, and each process
// subscribes once, so that a request waiting on one replica is woken by a release on another without polling Redis.
public sealed partial class RedisStore
{
    private readonly string _origin = Random.Shared.NextInt64().ToString("x16", CultureInfo.InvariantCulture);
    private readonly Lock _listenLock = new();
    private Action<StoreKey>? _permitReleased;
    private IConnectionMultiplexer? _listeningOn;
    private string? _releaseChannelName;
    private long _noticesHeard;

    /// <summary>
    /// Raised when another process released a lease of a concurrency limit that queues (release.lua publishes it on
    /// <c>&lt;key prefix&gt;permits:released</c>); this process's own releases are not raised. The store subscribes once,
    /// when the first handler is added (again on a new connection, as after a Sentinel failover).
    /// </summary>
    public event Action<StoreKey>? PermitReleased
    {
        add
        {
            lock (_listenLock)
            {
                _permitReleased += value;
            }

            ListenForReleases();
        }

        remove
        {
            lock (_listenLock)
            {
                _permitReleased -= value;
            }
        }
    }

    /// <summary>How many release notices of other processes this store has heard.</summary>
    internal long NoticesHeard => Interlocked.Read(ref _noticesHeard);

    /// <summary>The channel release.lua publishes on.</summary>
    private string ReleaseChannelName => _releaseChannelName ??= _prefix + "permits:released";

    /// <summary>The notice of a release of <paramref name="key"/>: this process's id, then the key's two hashes in hex.</summary>
    private string ReleaseNotice(StoreKey key) => string.Concat(_origin, key.IdentityHex, key.ValueHex);

    /// <summary>Subscribes to the release notices on the connection in use, once, when anyone listens.</summary>
    private void ListenForReleases()
    {
        var connection = Current;
        if (connection is null || Volatile.Read(ref _permitReleased) is null || ReferenceEquals(Volatile.Read(ref _listeningOn), connection))
        {
            return;
        }

        lock (_listenLock)
        {
            if (ReferenceEquals(_listeningOn, connection))
            {
                return;
            }

            _listeningOn = connection;
        }

        _ = SubscribeAsync(connection);
    }

    private async Task SubscribeAsync(IConnectionMultiplexer connection)
    {
        try
        {
            await connection.GetSubscriber().SubscribeAsync(RedisChannel.Literal(ReleaseChannelName), (_, message) => OnNotice(message)).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Tried again at the next release of a queued limit; meanwhile the queues' poll wakes the waiters.
            Interlocked.CompareExchange(ref _listeningOn, null, connection);
            LogSubscribeFailed(_logger, ex);
        }
    }

    private void OnNotice(RedisValue message)
    {
        var text = (string?)message;
        if (text is not { Length: 80 } || text.StartsWith(_origin, StringComparison.Ordinal)
            || !UInt128.TryParse(text.AsSpan(16, 32), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var identity)
            || !UInt128.TryParse(text.AsSpan(48, 32), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
        {
            return;
        }

        Interlocked.Increment(ref _noticesHeard);
        Volatile.Read(ref _permitReleased)?.Invoke(new StoreKey(identity, value));
    }

    [LoggerMessage(11, LogLevel.Warning, "Subscribing to the release notices of queued concurrency limits failed; waiters are woken by their queue's poll until it succeeds")]
    private static partial void LogSubscribeFailed(ILogger logger, Exception exception);
}
