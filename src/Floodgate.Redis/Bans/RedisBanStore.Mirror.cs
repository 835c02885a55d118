using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Keeping the local mirror in step: a reload when a version is published, and the poll under it.
public sealed partial class RedisBanStore
{
    private async Task StartAsync()
    {
        try
        {
            // Subscribed before the first load: a change made between the two is then either in the load or after it.
            var messages = await _connection.GetSubscriber().SubscribeAsync(_channel).ConfigureAwait(false);
            _messages = messages;
            messages.OnMessage(message => long.TryParse((string?)message.Message, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version) && version <= Interlocked.Read(ref _applied)
                ? Task.CompletedTask
                : ReloadAsync());
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSyncFailed(_logger, e);
        }

        await ReloadAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Replaces the mirror with the stored set. Reloads asked for while one runs are folded into one more after it, so a
    /// burst of bans (an attack from many addresses) costs a few reloads, not one per ban.
    /// </summary>
    private async Task ReloadAsync()
    {
        if (Interlocked.Increment(ref _reloadsWanted) > 1 || _stopping.IsCancellationRequested)
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
            do
            {
                Volatile.Write(ref _reloadsWanted, 1);
                try
                {
                    var (version, bans) = await LoadAsync(_stopping.Token).ConfigureAwait(false);
                    _local.Replace(bans);
                    Interlocked.Exchange(ref _applied, version);
                }
                catch (Exception e) when (e is RedisException or TimeoutException or InvalidCastException)
                {
                    LogSyncFailed(_logger, e);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            while (Interlocked.Decrement(ref _reloadsWanted) > 0);
        }
        finally
        {
            Volatile.Write(ref _reloadsWanted, 0);
            _sync.Release();
        }
    }

    /// <summary>The safety net: the stored version, read once a poll interval; a mirror behind it is reloaded.</summary>
    private async Task PollAsync()
    {
        if (_stopping.IsCancellationRequested || !_connection.IsConnected)
        {
            return;
        }

        try
        {
            var stored = (long?)await _connection.GetDatabase().StringGetAsync(_keys[2]).ConfigureAwait(false) ?? 0;
            if (stored != Interlocked.Read(ref _applied))
            {
                await ReloadAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSyncFailed(_logger, e);
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        // Messages published while the connection was down are lost: read everything again.
        _ = ReloadAsync();
    }

    [LoggerMessage(1, LogLevel.Warning, "Bans could not be read from Redis; the local copy stays in force and is read again within a second")]
    private static partial void LogSyncFailed(ILogger logger, Exception exception);
}
