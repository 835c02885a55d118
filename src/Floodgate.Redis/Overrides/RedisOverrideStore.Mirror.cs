using System.Collections.Concurrent;
using System.Globalization;
using Floodgate.Overrides;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Keeping the local mirror in step: the published changes, the full reloads, the poll.
public sealed partial class RedisOverrideStore
{
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
            LogSyncFailed(_logger, e);
        }

        await ReloadAsync().ConfigureAwait(false);
    }

    /// <summary>A published change "version subject": applied when it is the next version, else a full reload.</summary>
    private async Task OnMessageAsync(ChannelMessage message)
    {
        var text = (string?)message.Message ?? string.Empty;
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0 || !long.TryParse(text.AsSpan(0, space), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
        {
            return;
        }

        var subject = text[(space + 1)..];
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
                var value = OverrideJson.Read(await _connection.GetDatabase().HashGetAsync(_hash, subject).ConfigureAwait(false));
                var local = Volatile.Read(ref _local);
                if (value is null)
                {
                    local.TryRemove(subject, out _);
                }
                else
                {
                    local[subject] = value;
                }

                Interlocked.Exchange(ref _applied, version);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogSyncFailed(_logger, e);
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

    /// <summary>Reads every override and the version they are at, in one script, and replaces the mirror with them.</summary>
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
            var reply = (RedisResult[])(await _connection.GetDatabase().ScriptEvaluateAsync(LoadScript, [_hash, _version]).ConfigureAwait(false))!;
            var version = (long)reply[0];
            var fields = (RedisResult[])reply[1]!;
            var now = _time.GetUtcNow();
            var next = new ConcurrentDictionary<string, RateLimitOverride>(StringComparer.Ordinal);
            var lapsed = new List<RedisValue>();
            for (var i = 0; i + 1 < fields.Length; i += 2)
            {
                var subject = (string)fields[i]!;
                if (OverrideJson.Read((string?)fields[i + 1]) is not { } value)
                {
                    continue;
                }

                if (value.IsExpired(now))
                {
                    lapsed.Add(subject);
                }
                else
                {
                    next[subject] = value;
                }
            }

            Volatile.Write(ref _local, next);
            Interlocked.Exchange(ref _applied, version);
            Interlocked.Exchange(ref _behindSince, -1);
            if (lapsed.Count > 0)
            {
                // Lapsed already, so removing them changes nothing anyone sees: no version, no message.
                _ = _connection.GetDatabase().HashDeleteAsync(_hash, [.. lapsed], CommandFlags.FireAndForget);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException or InvalidCastException)
        {
            LogSyncFailed(_logger, e);
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
            LogSyncFailed(_logger, e);
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

    [LoggerMessage(1, LogLevel.Warning, "Overrides could not be read from Redis; the local copy stays in force and is read again within a second")]
    private static partial void LogSyncFailed(ILogger logger, Exception exception);
}
