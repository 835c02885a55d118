using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// The master Redis Sentinel names for a service, followed as it changes: one plain connection to exactly that node,
/// replaced by a connection to the next one when the Sentinels name another.
/// </summary>
/// <remarks>
/// <para>
/// StackExchange.Redis's own Sentinel support connects to the master and its replicas and elects a primary among them
/// by their roles. After a graceful failover (<c>SENTINEL FAILOVER</c>) the old master keeps the master role until
/// Sentinel converts it, about 10 s later, and the client may keep writing there all that time: writes the conversion
/// then discards. Here the Sentinels alone say which node is the master: the answer with the highest configuration epoch
/// wins, and the connection holds no other node, so a decision never lands on a node Sentinel has demoted.
/// </para>
/// <para>
/// The Sentinels are asked when this starts, when one announces <c>+switch-master</c>, and every second (a missed
/// announcement, a Sentinel that restarted). While no Sentinel answers, or before the first answer, there is no
/// connection and the store answers by its failure mode.
/// </para>
/// </remarks>
internal sealed partial class SentinelMaster : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private static readonly RedisChannel SwitchMaster = RedisChannel.Literal("+switch-master");

    private readonly ConfigurationOptions _template;
    private readonly string _service;
    private readonly ConnectionMultiplexer _sentinels;
    private readonly TimeSpan _askTimeout;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _refreshing = new(1, 1);
    private readonly CancellationTokenSource _disposed = new();
    private ITimer? _timer;
    private Node? _master;
    private int _requested;
    private bool _answered = true;

    // The highest configuration epoch accepted so far: an answer below it comes from a Sentinel that has not heard of a
    // failover this store already followed, and must not move it back to a demoted master.
    private long _epoch = long.MinValue;

    private SentinelMaster(ConfigurationOptions template, string service, ConnectionMultiplexer sentinels, ILogger logger)
    {
        _template = template;
        _service = service;
        _sentinels = sentinels;
        _askTimeout = TimeSpan.FromMilliseconds(Math.Clamp(template.ConnectTimeout, 100, 1000));
        _logger = logger;
    }

    /// <summary>Raised with the new connection after the store moved to another master (or found the first).</summary>
    public event Action<IConnectionMultiplexer>? Connected;

    /// <summary>The connection to the master the Sentinels name; <see langword="null"/> while none has been named.</summary>
    public IConnectionMultiplexer? Connection => Volatile.Read(ref _master)?.Connection;

    /// <summary>The service's name.</summary>
    public string Service => _service;

    /// <summary>
    /// Connects to the Sentinels listed in <paramref name="configuration"/> and to the master they name for its
    /// <see cref="ConfigurationOptions.ServiceName"/>; never throws for Sentinels or a master that cannot be reached.
    /// </summary>
    public static async Task<SentinelMaster> ConnectAsync(ConfigurationOptions configuration, ILogger logger)
    {
        var service = configuration.ServiceName!;

        // The Sentinels: the same options (TLS included), with the Sentinels' own credentials when given.
        var sentinelOptions = configuration.Clone();
        sentinelOptions.User = configuration.SentinelUser;
        sentinelOptions.Password = configuration.SentinelPassword;
        var sentinels = await ConnectionMultiplexer.SentinelConnectAsync(sentinelOptions).ConfigureAwait(false);

        // The master: the same options, one endpoint, no service name (a plain connection to one node).
        var template = configuration.Clone();
        template.ServiceName = null;
        template.EndPoints.Clear();

        var master = new SentinelMaster(template, service, sentinels, logger);
        try
        {
            await sentinels.GetSubscriber().SubscribeAsync(SwitchMaster, master.OnSwitchMaster).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // No Sentinel is reachable yet; the poll below finds the master once one is.
        }

        await master.RefreshAsync().ConfigureAwait(false);
        master._timer = TimeProvider.System.CreateTimer(static state => ((SentinelMaster)state!).RequestRefresh(), master, PollInterval, PollInterval);
        return master;
    }

    /// <summary>Asks the Sentinels again now; a request made while one is under way runs after it.</summary>
    public void RequestRefresh()
    {
        Interlocked.Exchange(ref _requested, 1);
        _ = RefreshAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        await _disposed.CancelAsync().ConfigureAwait(false);
        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        // Wait for a refresh under way, so that no connection it makes outlives this.
        await _refreshing.WaitAsync().ConfigureAwait(false);
        try
        {
            await _sentinels.DisposeAsync().ConfigureAwait(false);
            if (Interlocked.Exchange(ref _master, null) is { } master)
            {
                await master.Connection.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _refreshing.Release();
        }

        _disposed.Dispose();
    }

    /// <summary>The address of the master named by the answer with the highest configuration epoch, or <see langword="null"/>.</summary>
    internal static EndPoint? Newest(IEnumerable<KeyValuePair<string, string>[]?> answers) => Newest(answers, long.MinValue, out _);

    /// <summary>
    /// The address of the master named by the answer with the highest configuration epoch, at least
    /// <paramref name="atLeast"/>, and that epoch; <see langword="null"/> when no answer qualifies.
    /// </summary>
    internal static EndPoint? Newest(IEnumerable<KeyValuePair<string, string>[]?> answers, long atLeast, out long epoch)
    {
        EndPoint? newest = null;
        epoch = atLeast == long.MinValue ? long.MinValue : atLeast - 1;
        foreach (var answer in answers)
        {
            if (answer is null)
            {
                continue;
            }

            string? ip = null, port = null, configEpoch = null;
            foreach (var (name, value) in answer)
            {
                switch (name)
                {
                    case "ip":
                        ip = value;
                        break;
                    case "port":
                        port = value;
                        break;
                    case "config-epoch":
                        configEpoch = value;
                        break;
                }
            }

            if (string.IsNullOrEmpty(ip) || !int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number is < 1 or > 65535
                || !long.TryParse(configEpoch, NumberStyles.None, CultureInfo.InvariantCulture, out var answerEpoch) || answerEpoch <= epoch)
            {
                continue;
            }

            epoch = answerEpoch;
            newest = IPAddress.TryParse(ip, out var address) ? new IPEndPoint(address, number) : new DnsEndPoint(ip, number);
        }

        return newest;
    }

    private void OnSwitchMaster(RedisChannel channel, RedisValue message)
    {
        // "<service> <old ip> <old port> <new ip> <new port>"
        var text = (string?)message;
        if (text is not null && text.StartsWith(_service + " ", StringComparison.Ordinal))
        {
            RequestRefresh();
        }
    }

    private async Task RefreshAsync()
    {
        if (_disposed.IsCancellationRequested || !await _refreshing.WaitAsync(0).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            if (_disposed.IsCancellationRequested)
            {
                // Disposed while this waited for the semaphore: the Sentinels' connection is gone.
                return;
            }

            do
            {
                Interlocked.Exchange(ref _requested, 0);
                await MoveAsync().ConfigureAwait(false);
            }
            while (Volatile.Read(ref _requested) == 1 && !_disposed.IsCancellationRequested);
        }
        catch (Exception ex)
        {
            // A failed refresh leaves the connection as it was; the next one tries again.
            LogRefreshFailed(_logger, _service, ex);
        }
        finally
        {
            _refreshing.Release();
        }
    }

    /// <summary>Asks every Sentinel and moves to the master they name, if it changed.</summary>
    private async Task MoveAsync()
    {
        // Sentinels not connected are asked too: they fail at once (fail-fast backlog, under 10 ms in the tests) with
        // the reason, such as refused credentials or a refused connection, that the warning below gives when none answers.
        var asks = _sentinels.GetEndPoints().Select(endpoint => AskAsync(_sentinels.GetServer(endpoint)));
        var replies = await Task.WhenAll(asks).ConfigureAwait(false);
        var answers = Array.ConvertAll(replies, static r => r.Answer);
        var named = Newest(answers, _epoch, out var epoch);
        if (named is null && answers.Any(static a => a is not null))
        {
            // Only Sentinels behind a failover already followed answered: stay on the master of the newest epoch.
            _answered = true;
            return;
        }

        if (named is null)
        {
            if (_answered)
            {
                _answered = false;
                LogNoAnswer(_logger, _service, replies.Select(static r => r.Error).FirstOrDefault(static e => e is not null));
            }

            return;
        }

        _answered = true;
        var current = _master;
        if (current is not null && current.EndPoint.Equals(named))
        {
            _epoch = Math.Max(_epoch, epoch);
            return;
        }

        var options = _template.Clone();
        options.EndPoints.Add(named);
        var connection = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
        if (_disposed.IsCancellationRequested)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        Volatile.Write(ref _master, new Node(named, connection));
        _epoch = Math.Max(_epoch, epoch);
        if (current is null)
        {
            LogFound(_logger, _service, named.ToString() ?? string.Empty);
        }
        else
        {
            LogMoved(_logger, _service, named.ToString() ?? string.Empty, current.EndPoint.ToString() ?? string.Empty);
        }

        Connected?.Invoke(connection);
        if (current is not null)
        {
            // Calls already sent to the old master finish (or time out) before its connection closes.
            _ = CloseAsync(current.Connection);
        }
    }

    private async Task<(KeyValuePair<string, string>[]? Answer, Exception? Error)> AskAsync(IServer sentinel)
    {
        try
        {
            return (await sentinel.SentinelMasterAsync(_service).WaitAsync(_askTimeout, TimeProvider.System).ConfigureAwait(false), null);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // This Sentinel does not answer, or does not know the service: the others decide.
            return (null, ex);
        }
    }

    private static async Task CloseAsync(ConnectionMultiplexer connection)
    {
        try
        {
            await connection.CloseAsync(allowCommandsToComplete: true).ConfigureAwait(false);
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(7, LogLevel.Information, "Redis Sentinel names {EndPoint} the master of '{Service}'")]
    private static partial void LogFound(ILogger logger, string service, string endPoint);

    [LoggerMessage(4, LogLevel.Warning, "Redis Sentinel names {EndPoint} the master of '{Service}' (was {Previous}); decisions go there now")]
    private static partial void LogMoved(ILogger logger, string service, string endPoint, string previous);

    [LoggerMessage(5, LogLevel.Warning, "No Redis Sentinel names a master for '{Service}'; decisions follow on_failure until one does")]
    private static partial void LogNoAnswer(ILogger logger, string service, Exception? exception);

    [LoggerMessage(6, LogLevel.Warning, "Asking the Redis Sentinels for the master of '{Service}' failed")]
    private static partial void LogRefreshFailed(ILogger logger, string service, Exception exception);

    private sealed record Node(EndPoint EndPoint, ConnectionMultiplexer Connection);
}
