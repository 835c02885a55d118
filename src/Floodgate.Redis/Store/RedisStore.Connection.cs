using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Connecting (directly, under Sentinel, or in the background), the connection in use, loading the scripts, disposing.
public sealed partial class RedisStore
{
    /// <summary>Connects to Redis as <paramref name="options"/> say and creates a store that owns the connection.</summary>
    /// <remarks>
    /// <para>
    /// The connection is made with <c>abortConnect=false</c>, so the store starts (answering by its failure mode) even
    /// while Redis is down, and with a fail-fast backlog, so a decision never queues behind a reconnect.
    /// </para>
    /// <para>
    /// With <c>serviceName=</c> the hosts are Redis Sentinels: the store asks them for the master itself (when it
    /// starts, on <c>+switch-master</c> and every second; the highest configuration epoch wins) and keeps one connection
    /// to exactly that node, replaced at a failover. It starts even while no Sentinel answers.
    /// </para>
    /// </remarks>
    /// <exception cref="ArgumentException">An option is missing or out of range, a TLS file cannot be used, or the configuration string is invalid.</exception>
    public static async Task<RedisStore> ConnectAsync(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisStore>? logger = null, IMeterFactory? meterFactory = null)
    {
        var configuration = Configure(options, logger);
        if (!string.IsNullOrEmpty(configuration.ServiceName))
        {
            var sentinel = await SentinelMaster.ConnectAsync(configuration, (ILogger?)logger ?? NullLogger.Instance).ConfigureAwait(false);
            return new RedisStore(null, sentinel, true, options, timeProvider, logger, meterFactory);
        }

        var connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        return new RedisStore(connection, null, true, options, timeProvider, logger, meterFactory);
    }

    /// <summary>Connects synchronously; see <see cref="ConnectAsync"/>.</summary>
    /// <exception cref="ArgumentException">An option is missing or out of range, a TLS file cannot be used, or the configuration string is invalid.</exception>
    public static RedisStore Connect(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisStore>? logger = null, IMeterFactory? meterFactory = null)
    {
        var configuration = Configure(options, logger);
        if (!string.IsNullOrEmpty(configuration.ServiceName))
        {
            var sentinel = Task.Run(() => SentinelMaster.ConnectAsync(configuration, (ILogger?)logger ?? NullLogger.Instance)).GetAwaiter().GetResult();
            return new RedisStore(null, sentinel, true, options, timeProvider, logger, meterFactory);
        }

        var connection = ConnectionMultiplexer.Connect(configuration);
        return new RedisStore(connection, null, true, options, timeProvider, logger, meterFactory);
    }

    /// <summary>
    /// Creates a store that owns its connection and returns at once, connecting in the background as
    /// <see cref="ConnectAsync"/> does; until the connection is made (<see cref="Connecting"/>) its decisions are answered
    /// by the failure mode, counted as failures, as while Redis is unreachable.
    /// </summary>
    /// <exception cref="ArgumentException">An option is missing or out of range, a TLS file cannot be used, or the configuration string is invalid.</exception>
    internal static RedisStore Start(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisStore>? logger = null, IMeterFactory? meterFactory = null)
    {
        var configuration = Configure(options, logger);
        var store = new RedisStore(null, null, true, options, timeProvider, logger, meterFactory);

        // On the thread pool: not one step of the connection runs on the caller's thread (a request's, typically).
        store.Connecting = Task.Run(() => store.ConnectInBackgroundAsync(configuration, logger));
        return store;
    }

    /// <summary>Completes when a store made by <see cref="Start"/> has its connection (or gave up); completed for any other.</summary>
    internal Task Connecting { get; private set; } = Task.CompletedTask;

    private async Task ConnectInBackgroundAsync(ConfigurationOptions configuration, ILogger? logger)
    {
        try
        {
            if (!string.IsNullOrEmpty(configuration.ServiceName))
            {
                var sentinel = await SentinelMaster.ConnectAsync(configuration, logger ?? NullLogger.Instance).ConfigureAwait(false);
                if (!Attach(null, sentinel))
                {
                    await sentinel.DisposeAsync().ConfigureAwait(false);
                }

                return;
            }

            var connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
            if (!Attach(connection, null))
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            // With abortConnect=false an unreachable Redis is no error; this is one the synchronous Connect would have thrown.
            LogConnectFailed(_logger, ex);
        }
    }

    /// <summary>Gives the store the connection made in the background; <see langword="false"/> when it was disposed first.</summary>
    private bool Attach(IConnectionMultiplexer? connection, SentinelMaster? sentinel)
    {
        lock (_connectionLock)
        {
            if (_disposed)
            {
                return false;
            }

            Volatile.Write(ref _sentinel, sentinel);
            Volatile.Write(ref _connection, connection);
        }

        // The decisions made while connecting failed for want of a connection, not because Redis did: they must not
        // keep the breaker open once there is one.
        _breakers.Own.Reset();

        PreloadScripts(sentinel);
        ListenForReleases();
        return true;
    }

    /// <summary>Marks the store disposed, so that a connection still being made is closed when it arrives.</summary>
    private void MarkDisposed()
    {
        lock (_connectionLock)
        {
            _disposed = true;
        }
    }

    /// <summary>Closes the connection when the store owns it.</summary>
    public void Dispose()
    {
        if (_ownsConnection)
        {
            MarkDisposed();
            _connection?.Dispose();
            _sentinel?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Closes the connection when the store owns it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownsConnection)
        {
            MarkDisposed();
            if (_connection is not null)
            {
                await _connection.DisposeAsync().ConfigureAwait(false);
            }

            if (_sentinel is not null)
            {
                await _sentinel.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Loads the script into every connected primary in the background, so the first decisions need no NOSCRIPT
    /// round trip. Best effort: a server that is down or joins later loads it on its first NOSCRIPT.
    /// </summary>
    private static async Task PreloadScriptAsync(IConnectionMultiplexer connection)
    {
        try
        {
            foreach (var endpoint in connection.GetEndPoints())
            {
                var server = connection.GetServer(endpoint);
                if (server.IsConnected && !server.IsReplica)
                {
                    await server.ScriptLoadAsync(Script).WaitAsync(TimeSpan.FromSeconds(5), TimeProvider.System).ConfigureAwait(false);
                    await server.ScriptLoadAsync(ReleaseScript).WaitAsync(TimeSpan.FromSeconds(5), TimeProvider.System).ConfigureAwait(false);
                    await server.ScriptLoadAsync(RenewScript).WaitAsync(TimeSpan.FromSeconds(5), TimeProvider.System).ConfigureAwait(false);
                }
            }
        }
        catch (Exception)
        {
            // Recovered on the first NOSCRIPT.
        }
    }

    internal static ConfigurationOptions Configure(RedisStoreOptions options, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        // The TLS files are read (and refused with the same errors) once, by RedisTls.Apply below.
        options.Validate(requireConfiguration: true, checkTlsFiles: false);
        ConfigurationOptions configuration;
        try
        {
            configuration = ConfigurationOptions.Parse(options.Configuration!);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException)
        {
            // The string is not repeated: it may hold a password, and this message reaches logs and /readyz.
            throw new ArgumentException($"The Redis configuration is invalid: {ex.Message}", nameof(options), ex);
        }

        RedisTls.Apply(configuration, options, logger ?? NullLogger.Instance);
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "floodgate";
        return configuration;
    }

    /// <summary>
    /// The connection decisions use now: the one given, or the current master's under Sentinel (none before the first);
    /// none while a store made by <see cref="Start"/> is connecting.
    /// </summary>
    private IConnectionMultiplexer? Current => Volatile.Read(ref _sentinel) is { } sentinel ? sentinel.Connection : Volatile.Read(ref _connection);

    private RedisConnectionException NoMaster() =>
        new(ConnectionFailureType.UnableToConnect, CommandFlags.None, NotConnected());

    private string NotConnected() => Volatile.Read(ref _sentinel) is { } sentinel
        ? $"No Redis Sentinel has named a master for '{sentinel.Service}' yet."
        : "The store has not connected to Redis yet.";

    /// <summary>Loads the scripts into the connection, and under Sentinel into each new master as it is found.</summary>
    private void PreloadScripts(SentinelMaster? sentinel)
    {
        if (sentinel is not null)
        {
            // Each new master gets the script before its first decision, as far as the race allows.
            sentinel.Connected += static connection => _ = PreloadScriptAsync(connection);
        }

        if (Current is { } current)
        {
            _ = PreloadScriptAsync(current);
        }
    }
}
