using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// A store whose state lives in Redis or Valkey, shared by every replica: one Lua script, mirroring the engine's math,
/// decides each identity's checks atomically and a request's tiers in order, in one round trip on a single node.
/// </summary>
/// <remarks>
/// <para>
/// The script reads each key's state and the server's clock (<c>TIME</c>), decides with the same integer arithmetic as
/// <see cref="LimitMath"/>, commits all or nothing for the identity, and returns the state it read. This store then
/// describes the decision (remaining, reset, retry) by calling <see cref="LimitMath"/> on that state, so it answers
/// exactly as the <see cref="MemoryStore"/> would.
/// </para>
/// <para>
/// Scripts run through StackExchange.Redis's script cache, which sends <c>EVALSHA</c> and, when the server answers
/// <c>NOSCRIPT</c> (after <c>SCRIPT FLUSH</c>, a restart, a failover or a resharding), sends the script again.
/// </para>
/// <para>
/// Keys over their limit are answered in this process until they fit again (<see cref="RedisStoreOptions.OverLimitCache"/>);
/// limits with a <see cref="Limit.LeasedSlice"/> are spent locally from slices taken from Redis. Every call has a
/// timeout and a circuit breaker (on a cluster, one per master: a dead node fails only its own keys); while Redis is unreachable the store answers by <see cref="RedisStoreOptions.FailureMode"/>,
/// flags those outcomes with <see cref="StoreOutcome.IsStoreFailure"/>, and never throws. It recovers by itself.
/// </para>
/// <para>
/// Metrics are reported on the <c>Floodgate.Redis</c> meter: <c>floodgate.redis.round_trips</c>,
/// <c>floodgate.redis.local_decisions</c> (tagged <c>source</c>), <c>floodgate.redis.failures</c> (tagged <c>reason</c>)
/// and <c>floodgate.redis.fallback_decisions</c> (tagged <c>mode</c>).
/// </para>
/// </remarks>
public sealed partial class RedisStore : IRateLimitStore, IAsyncDisposable, IDisposable
{
    /// <summary>The name of the meter the store reports on.</summary>
    public const string MeterName = "Floodgate.Redis";

    /// <summary>The Lua script that decides one identity's checks, as sent to Redis.</summary>
    public static readonly string Script = LoadScript("decide.lua");

    /// <summary>The Lua script that releases a concurrency lease and gives its permits back to the key's sum.</summary>
    internal static readonly string ReleaseScript = LoadScript("release.lua");

    /// <summary>The SHA-1 of <see cref="Script"/>, which <c>EVALSHA</c> names it by.</summary>
    private static readonly byte[] ScriptHash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(Script));

    internal const int Stride = 10;
    private const int NoSlot = -1;

    private static readonly int[][] OneStageEnds = [.. Enumerable.Range(0, 65).Select(static n => new[] { n })];

    /// <summary>Any key: its hash slot is -1 exactly when the connection is not to a cluster.</summary>
    private static readonly RedisKey SlotProbe = "floodgate";
    private const long RedisLeaseBit = 1L << 62;
    private const long LogIntervalMicroseconds = 1_000_000;
    private const long ClosedRetryMicroseconds = 1_000_000;
    private const int SlotCount = 16384;

    /// <summary>How often, at most, a slot whose breaker is open asks the connection again which master owns it.</summary>
    private const long RerouteMicroseconds = 100_000;

    /// <summary>The first pause before a call answered TRYAGAIN is sent again; each next one doubles, up to the longest.</summary>
    private static readonly TimeSpan TryAgainFirstPause = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan TryAgainLongestPause = TimeSpan.FromMilliseconds(20);

    private static readonly Meter SharedMeter = new(MeterName);

    // Set once: at construction, or (a store made by Start) when its connection is made.
    private IConnectionMultiplexer? _connection;
    private SentinelMaster? _sentinel;
    private readonly bool _ownsConnection;

    /// <summary>Orders a connection made in the background against disposal: one made after it is closed at once.</summary>
    private readonly Lock _attaching = new();
    private bool _disposed;

    private readonly RedisStoreOptions _options;
    private readonly string _prefix;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    /// <summary>The breaker of a single node or of Sentinel's master; on a cluster, of the slots no master is known for.</summary>
    private readonly CircuitBreaker _breaker;

    /// <summary>On a cluster, a breaker per master, by endpoint.</summary>
    private readonly ConcurrentDictionary<EndPoint, CircuitBreaker> _nodeBreakers = new();
    private readonly Func<EndPoint, CircuitBreaker> _newNodeBreaker;

    /// <summary>On a cluster, each hash slot's master's breaker, filled in as slots are first used.</summary>
    private SlotRoute?[]? _slotRoutes;
    private readonly OverLimitCache? _cache;
    private readonly LeaseSlices _slices;
    private readonly CallCoalescer _calls;
    private readonly MemoryStore _local;
    private readonly ConditionalWeakTable<Limit, Limit> _localLimits = [];
    private readonly ConditionalWeakTable<Limit, Limit>.CreateValueCallback _divide;
    private readonly Counter<long> _roundTrips;
    private readonly Counter<long> _localDecisions;
    private readonly Counter<long> _failures;
    private readonly Counter<long> _fallbacks;
    private long _roundTripCount;
    private long _localDecisionCount;
    private long _failureCount;
    private long _mismatchCount;
    private readonly long _started;

    // Far enough in the past that the first failure is logged; long.MinValue would overflow 'now - last' and, until a
    // breaker opened, silence every failure log.
    private long _lastLog = long.MinValue / 2;
    private long _suppressedLogs;

    /// <summary>Creates a store on a connection the caller owns and disposes.</summary>
    /// <param name="connection">The connection; single node, Sentinel or Cluster.</param>
    /// <param name="options">The options; <see cref="RedisStoreOptions.Configuration"/> is not used.</param>
    /// <param name="timeProvider">The clock of the over-limit cache, the leased slices and the breaker; the system clock by default.
    /// Decisions take their time from the Redis server.</param>
    /// <param name="logger">Where failures are logged, at most once a second.</param>
    /// <param name="meterFactory">Creates the meter; a shared static meter by default.</param>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public RedisStore(IConnectionMultiplexer connection, RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisStore>? logger = null, IMeterFactory? meterFactory = null)
        : this(connection ?? throw new ArgumentNullException(nameof(connection)), null, false, options, timeProvider, logger, meterFactory)
    {
    }

    /// <summary>
    /// A store on <paramref name="connection"/>, or on the master <paramref name="sentinel"/> follows; neither for a store
    /// made by <see cref="Start"/>, which gets one when it is connected.
    /// </summary>
    private RedisStore(IConnectionMultiplexer? connection, SentinelMaster? sentinel, bool owns, RedisStoreOptions options, TimeProvider? timeProvider, ILogger? logger, IMeterFactory? meterFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        // The TLS files are not read again: a caller's connection ignores them, and Connect has just read them.
        options.Validate(requireConfiguration: false, checkTlsFiles: false);
        _connection = connection;
        _sentinel = sentinel;
        _ownsConnection = owns;
        _options = options;
        _prefix = options.KeyPrefix;
        _time = timeProvider ?? TimeProvider.System;
        _started = _time.GetTimestamp();
        _logger = logger ?? NullLogger.Instance;
        _breaker = new CircuitBreaker(options.BreakerFailureThreshold, Micros(options.BreakerDuration));
        _newNodeBreaker = endPoint => new CircuitBreaker(options.BreakerFailureThreshold, Micros(options.BreakerDuration), NameOf(endPoint));
        _cache = options.OverLimitCache ? new OverLimitCache(options.OverLimitCacheSize) : null;
        _slices = new LeaseSlices(Micros(options.LeaseSliceLifetime));
        // Kept even when the store's own mode is not local: a rule may ask for local answers on its own.
        _local = new MemoryStore(options.LocalStore, _time);
        var replicas = options.Replicas;
        _divide = limit => DivideLimit(limit, replicas);
        var meter = meterFactory?.Create(MeterName) ?? SharedMeter;
        _roundTrips = meter.CreateCounter<long>("floodgate.redis.round_trips", "{call}", "Script calls made: one per decision on a single node; on a cluster one per hash slot and stage.");
        _calls = new CallCoalescer(
            (keys, values) => Evaluate(keys, values, sendScript: false),
            options.Timeout,
            meter.CreateCounter<long>("floodgate.redis.runs", "{run}", "Runs of the decision script sent to a single node: concurrent decisions' calls share runs."));
        _localDecisions = meter.CreateCounter<long>("floodgate.redis.local_decisions", "{check}", "Checks answered without Redis, by source.");
        _failures = meter.CreateCounter<long>("floodgate.redis.failures", "{failure}", "Failed or timed-out Redis calls, by reason.");
        _fallbacks = meter.CreateCounter<long>("floodgate.redis.fallback_decisions", "{check}", "Checks answered by the failure mode, by mode.");
        PreloadScripts(sentinel);
    }

    /// <summary>
    /// The connection; for a store that follows Redis Sentinel (a configuration with <c>serviceName=</c>), the
    /// connection to the master the Sentinels name now, which changes at a failover.
    /// </summary>
    /// <exception cref="InvalidOperationException">The store follows Sentinel and no Sentinel has named a master yet, or
    /// (registered by <see cref="RedisStoreServiceCollectionExtensions.AddFloodgateRedisStore"/>) it has not connected yet.</exception>
    public IConnectionMultiplexer Connection => Current ?? throw new InvalidOperationException(NotConnected());

    /// <summary>The options in force.</summary>
    public RedisStoreOptions Options => _options;

    /// <summary>
    /// How many script calls this store has made: one per decision on a single node, where the calls of concurrent
    /// decisions share runs of the script; on a cluster one per hash slot and stage.
    /// </summary>
    public long RoundTrips => Volatile.Read(ref _roundTripCount);

    /// <summary>How many checks this store answered without Redis, from the over-limit cache or a leased slice.</summary>
    public long LocalDecisions => Volatile.Read(ref _localDecisionCount);

    /// <summary>How many Redis calls failed or timed out, or were skipped by the open circuit breaker.</summary>
    public long Failures => Volatile.Read(ref _failureCount);

    /// <summary>
    /// Whether the circuit breaker lets calls through to Redis; on a cluster, where each master has its own, whether
    /// every one does (<see langword="false"/> while any master's is open, as when the whole cluster is down).
    /// </summary>
    public bool IsCircuitClosed => OpenCircuits == 0;

    /// <summary>How many circuit breakers are open: 0 or 1 on a single node or under Sentinel; on a cluster, per master.</summary>
    public int OpenCircuits
    {
        get
        {
            var open = _breaker.IsClosed ? 0 : 1;

            // The dictionary itself, not its Values: enumerating it takes no lock and copies nothing.
            foreach (var (_, breaker) in _nodeBreakers)
            {
                open += breaker.IsClosed ? 0 : 1;
            }

            return open;
        }
    }

    internal long Mismatches => Volatile.Read(ref _mismatchCount);

    /// <summary>How many runs of the script the coalescer sent on a single node (a call sent alone is one).</summary>
    internal long Runs => _calls.Runs;

    internal int CachedKeys => _cache?.Count ?? 0;

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
        lock (_attaching)
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
        _breaker.Reset();

        PreloadScripts(sentinel);
        return true;
    }

    /// <summary>Marks the store disposed, so that a connection still being made is closed when it arrives.</summary>
    private void MarkDisposed()
    {
        lock (_attaching)
        {
            _disposed = true;
        }
    }

    /// <inheritdoc/>
    public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Discard(Decide(checks, OneStage(checks.Length), outcomes, null, true, Deadline(), cancellationToken));

    /// <inheritdoc/>
    /// <remarks>
    /// On a single node (or Sentinel) every stage goes in one script call, which stops at the first stage that rejects:
    /// one round trip for the whole request. On a cluster a call holds keys of one hash slot, so stages of different
    /// identities are decided one after the other.
    /// </remarks>
    public ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Decide(checks, stageEnds, outcomes, null, true, Deadline(), cancellationToken);

    /// <inheritdoc/>
    /// <remarks>Answers only when every identity of the batch is denied by the over-limit cache or served by leased slices.</remarks>
    public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
    {
        if (outcomes.Length < checks.Length)
        {
            throw new ArgumentException("There must be an outcome for every check.", nameof(outcomes));
        }

        var now = LocalNow();
        Span<bool> taken = checks.Length <= 32 ? stackalloc bool[checks.Length] : new bool[checks.Length];
        for (var i = 0; i < checks.Length; i++)
        {
            ref readonly var check = ref checks[i];
            if (IsLeased(check) && _slices.TryTake(check, now, out var left, mayAcquire: false) == LeaseSlices.Take.Local)
            {
                taken[i] = true;
                outcomes[i] = new StoreOutcome(new LimitOutcome(true, left, _slices.Lifetime(check, now), 0), true, 0);
            }
        }

        var answered = true;
        for (var i = 0; i < checks.Length && answered; i++)
        {
            if (taken[i])
            {
                continue;
            }

            // The check's identity must be denied by a cached enforced check, or else a round trip is needed.
            var identity = checks[i].Key.Identity;
            var denied = false;
            for (var j = 0; j < checks.Length && !denied; j++)
            {
                ref readonly var other = ref checks[j];
                denied = other.Key.Identity == identity && !other.IsShadow && CacheDenies(other, now, out _);
            }

            answered = denied;
        }

        if (!answered)
        {
            for (var i = 0; i < checks.Length; i++)
            {
                if (taken[i])
                {
                    _slices.Refund(checks[i]);
                }
            }

            return false;
        }

        // Every identity is answerable: identities with a cached denial are denied whole (their leased takes refunded).
        for (var i = 0; i < checks.Length; i++)
        {
            var identity = checks[i].Key.Identity;
            var groupDenied = false;
            for (var j = 0; j < checks.Length && !groupDenied; j++)
            {
                ref readonly var other = ref checks[j];
                groupDenied = other.Key.Identity == identity && !other.IsShadow && CacheDenies(other, now, out _);
            }

            if (!groupDenied)
            {
                continue;
            }

            if (taken[i])
            {
                _slices.Refund(checks[i]);
                outcomes[i] = outcomes[i] with { Committed = false };
            }
            else
            {
                outcomes[i] = CacheDenies(checks[i], now, out var outcome)
                    ? new StoreOutcome(outcome, false, 0)
                    : Unevaluated(checks[i]);
            }
        }

        CountLocal(checks.Length, "try_decide");
        return true;
    }

    /// <inheritdoc/>
    public async ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        if (leaseId == 0)
        {
            return;
        }

        if ((leaseId & RedisLeaseBit) == 0)
        {
            await _local.ReleaseAsync(check, leaseId, cancellationToken).ConfigureAwait(false);
            return;
        }

        var key = RedisKeys.For(_prefix, check.Key, LimitAlgorithm.Concurrency);
        var connection = Current;
        if (connection is not null)
        {
            // An open breaker answers a release as it answers a decision: without waiting on a node known to be down.
            var slot = connection.HashSlot(key);
            var breaker = slot == NoSlot ? _breaker : BreakerOf(connection, slot, SteadyNow());
            if (!breaker.IsClosed)
            {
                // The lease frees itself at its timeout.
                CountFailure("circuit_open");
                return;
            }
        }

        try
        {
            var release = Release(connection ?? throw NoMaster(), key, check, leaseId, CommandFlags.DemandMaster);
            await release.WaitAsync(_options.Timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The lease frees itself at its timeout.
            Fail(ex is TimeoutException ? "timeout" : "release", ex);
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

    /// <summary>Decides at an explicit server time, for tests that compare stores on one clock.</summary>
    internal ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, long now, CancellationToken cancellationToken = default) =>
        Discard(Decide(checks, OneStage(checks.Length), outcomes, now, true, Deadline(), cancellationToken));

    /// <summary>Decides stages at an explicit server time, for tests that compare stores on one clock.</summary>
    internal ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, long now, CancellationToken cancellationToken = default) =>
        Decide(checks, stageEnds, outcomes, now, true, Deadline(), cancellationToken);

    /// <summary>The stage ends of a batch that is one stage; cached for small batches, which is every engine tier.</summary>
    private static ReadOnlyMemory<int> OneStage(int count) =>
        count == 0 ? ReadOnlyMemory<int>.Empty : count < OneStageEnds.Length ? OneStageEnds[count] : new[] { count };

    private static ValueTask Discard(ValueTask<int> decided)
    {
        if (decided.IsCompletedSuccessfully)
        {
            return default;
        }

        return Await(decided);

        static async ValueTask Await(ValueTask<int> decided) => await decided.ConfigureAwait(false);
    }

    /// <summary>
    /// A replica's share of a gcra limit: the same amount over a period as many times longer, so the interval is the
    /// limit's times the replicas and the share is as exact as the limit (100k/s over 3 replicas is one request per 30 µs,
    /// where 33,333/s would round to 31 µs and admit 3 % less); Gcra accepts every such share of a limit it accepted. A
    /// period too long to multiply (a monthly limit over thousands of replicas) divides the amount instead, unchecked:
    /// the local fallback must answer during an outage, never throw.
    /// </summary>
    private static Limit GcraShare(Limit limit, int replicas)
    {
        var burst = Math.Max(1, limit.Burst / replicas);
        if (limit.Rate.PeriodMicroseconds <= Limit.MaxSpanMicroseconds / replicas && limit.Rate.UnitCount <= int.MaxValue / replicas)
        {
            return Limit.Gcra(new Rate(limit.Rate.Amount, limit.Rate.UnitCount * replicas, limit.Rate.Unit), burst);
        }

        return Limit.UncheckedGcra(new Rate(Math.Max(1, limit.Amount / replicas), limit.Rate.UnitCount, limit.Rate.Unit), burst);
    }

    internal static Limit DivideLimit(Limit limit, int replicas)
    {
        if (replicas == 1)
        {
            return limit;
        }

        var amount = Math.Max(1, limit.Amount / replicas);
        var rate = new Rate(amount, limit.Rate.UnitCount, limit.Rate.Unit);
        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra => GcraShare(limit, replicas),
            LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
            LimitAlgorithm.FixedWindow => Limit.FixedWindow(rate),
            LimitAlgorithm.Quota => Limit.Quota(rate, limit.Calendar),
            _ => Limit.Concurrency(amount, limit.LeaseTimeout),
        };
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
                }
            }
        }
        catch (Exception)
        {
            // Recovered on the first NOSCRIPT.
        }
    }

    private static ConfigurationOptions Configure(RedisStoreOptions options, ILogger? logger)
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

    private static string LoadScript(string name)
    {
        using var stream = typeof(RedisStore).Assembly.GetManifestResourceStream("Floodgate.Redis." + name)
            ?? throw new InvalidOperationException($"The embedded script Floodgate.Redis.{name} is missing from the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static long Micros(TimeSpan span) => span.Ticks / TimeSpan.TicksPerMicrosecond;

    /// <summary>Sends release.lua for <paramref name="leaseId"/> of <paramref name="check"/>, whose concurrency key is <paramref name="key"/>.</summary>
    private static Task<RedisResult> Release(IConnectionMultiplexer connection, RedisKey key, in RateLimitCheck check, long leaseId, CommandFlags flags) =>
        connection.GetDatabase().ScriptEvaluateAsync(ReleaseScript, [key], [LeaseMember(leaseId, check.Cost), check.Cost], flags);

    private static RedisValue LeaseMember(long leaseId, long permits) =>
        string.Create(CultureInfo.InvariantCulture, $"{leaseId}:{permits}");

    private static bool IsCacheable(in RateLimitCheck check) => check.Cost > 0 && check.Limit.Algorithm != LimitAlgorithm.Concurrency;

    /// <summary>Whether the check is spent from a leased slice: a probe never is, as it spends nothing.</summary>
    private static bool IsLeased(in RateLimitCheck check) =>
        check.Limit.LeasedSlice > 0 && check.Cost > 0 && check.Cost <= check.Limit.LeasedSlice && !check.IsProbe && check.Limit.Algorithm != LimitAlgorithm.Concurrency;

    /// <summary>A check of an identity denied locally by a sibling: not evaluated, not committed.</summary>
    private static StoreOutcome Unevaluated(in RateLimitCheck check) =>
        new(new LimitOutcome(true, check.Limit.Amount, 0, 0), false, 0);

    private bool CacheDenies(in RateLimitCheck check, long now, out LimitOutcome outcome)
    {
        outcome = default;
        return _cache is not null && IsCacheable(check) && _cache.TryDeny(check, now, out outcome);
    }

    /// <summary>
    /// Decides a batch stage by stage; <paramref name="deadline"/> (a <see cref="TimeProvider.System"/> timestamp) bounds
    /// every wait of the decision together, so a slow or failing Redis costs at most one timeout.
    /// </summary>
    /// <returns>How many stages were decided (see <see cref="IRateLimitStore.DecideStagesAsync"/>).</returns>
    private ValueTask<int> Decide(ReadOnlyMemory<RateLimitCheck> checksMemory, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomesMemory, long? serverNow, bool mayWait, long deadline, CancellationToken cancellationToken)
    {
        StagedDecisions.Validate(checksMemory.Length, stageEnds.Span, outcomesMemory.Length);
        var checks = checksMemory.Span;
        foreach (ref readonly var check in checks)
        {
            if (check.Cost < 0 || check.Limit is null)
            {
                throw new ArgumentException($"A check needs a limit and a cost of 0 or more, not {check.Cost}.", nameof(checksMemory));
            }
        }

        if (checks.Length == 0)
        {
            return new ValueTask<int>(0);
        }

        var localNow = serverNow ?? LocalNow();
        if (mayWait)
        {
            // A leased key whose slice is spent while another request of this replica takes the next one: wait for that
            // slice (at most the timeout) rather than going to Redis alongside it.
            List<Task>? pending = null;
            foreach (ref readonly var check in checks)
            {
                if (IsLeased(check) && _slices.Pending(check, localNow) is { } task)
                {
                    (pending ??= []).Add(task);
                }
            }

            if (pending is not null)
            {
                return WaitForSlices(pending, checksMemory, stageEnds, outcomesMemory, serverNow, deadline, cancellationToken);
            }
        }

        var batch = new Batch(checksMemory, stageEnds, outcomesMemory, serverNow, localNow, deadline, cancellationToken);
        var stage = 0;
        while (true)
        {
            var round = Plan(batch, stage);
            if (round.Calls is not null)
            {
                return RunAsync(batch, round, cancellationToken);
            }

            if (Settle(batch, round, out var next))
            {
                return new ValueTask<int>(next);
            }

            stage = next;
        }
    }

    /// <summary>Waits for a round's calls, settles it, and plans and runs the rounds after it.</summary>
    private async ValueTask<int> RunAsync(Batch batch, Round round, CancellationToken cancellationToken)
    {
        while (true)
        {
            await Complete(batch, round, cancellationToken).ConfigureAwait(false);
            if (Settle(batch, round, out var next))
            {
                return next;
            }

            while (true)
            {
                round = Plan(batch, next);
                if (round.Calls is not null)
                {
                    break;
                }

                if (Settle(batch, round, out next))
                {
                    return next;
                }
            }
        }
    }

    private async ValueTask<int> WaitForSlices(List<Task> pending, ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, long? serverNow, long deadline, CancellationToken cancellationToken)
    {
        var slices = Task.WhenAll(pending);
        try
        {
            await slices.WaitAsync(Remaining(deadline), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!slices.IsCompleted)
        {
            // The wait took the whole timeout (whatever the timer's granularity left on the clock): no call is sent, and
            // the checks without a slice are answered by the failure mode.
            deadline = Math.Min(deadline, TimeProvider.System.GetTimestamp());
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Decide without the slice: strictly in Redis.
        }

        // Only the time left: waiting for the slice and asking Redis share one timeout.
        return await Decide(checks, stageEnds, outcomes, serverNow, false, deadline, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Plans a round from <paramref name="first"/>: answers what it can locally (the over-limit cache, leased slices) and
    /// sends the rest. On a single node one call carries every stage up to the first that is known to reject, and the
    /// script stops at the first stage that rejects; on a cluster a round's stages must share one hash slot, so a round
    /// usually holds one stage, one call per slot.
    /// </summary>
    private Round Plan(Batch batch, int first)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var ends = batch.StageEnds.Span;
        var round = new Round(first);
        var connection = Current;
        var standalone = connection is null || connection.HashSlot(SlotProbe) == NoSlot;
        int? roundSlot = null;
        var manySlots = false;
        var remoteGroups = 0;
        for (var stage = first; stage < ends.Length; stage++)
        {
            var groups = Groups(batch, stage);
            if (!standalone)
            {
                foreach (var group in groups)
                {
                    var member = checks[group.Members[0]];
                    group.Slot = connection!.HashSlot(RedisKeys.For(_prefix, member.Key, member.Limit.Algorithm));
                }

                // A later stage joins the round's call only on the round's slot.
                if (remoteGroups > 0 && (manySlots || !AllOnSlot(groups, roundSlot)))
                {
                    break;
                }
            }

            var rejects = false;
            foreach (var group in groups)
            {
                rejects |= PlanGroup(batch, group, checks, outcomes);
                if (group.RemoteCount > 0)
                {
                    remoteGroups++;
                    manySlots |= roundSlot is { } slot && slot != group.Slot;
                    roundSlot ??= group.Slot;
                }
            }

            round.Groups.AddRange(groups);
            round.Last = stage;
            if (rejects)
            {
                break;
            }
        }

        if (remoteGroups == 0)
        {
            return round;
        }

        // One call per hash slot (a single node has none), the groups in stage order.
        var calls = new List<Call>(1);
        foreach (var group in round.Groups)
        {
            if (group.RemoteCount == 0)
            {
                continue;
            }

            // Loops, not List.Find with a lambda: a capturing lambda is an allocation per group on every decision.
            Call? call = null;
            foreach (var candidate in calls)
            {
                if (candidate.Slot == group.Slot)
                {
                    call = candidate;
                    break;
                }
            }

            if (call is null)
            {
                call = new Call(group.Slot);
                calls.Add(call);
            }

            call.Groups.Add(group);
        }

        if (Remaining(batch.Deadline) == TimeSpan.Zero)
        {
            // No time is left (an earlier round, or the wait for a leased slice, took it): a call sent now would be given
            // up on at once while its script still ran and charged. The calls' groups are answered by the failure mode,
            // as timed out; no breaker is told, since no node failed.
            foreach (var call in calls)
            {
                foreach (var group in call.Groups)
                {
                    group.Failed = true;
                }
            }

            Report("timeout", NoTimeLeft(), null);
            return round;
        }

        var now = SteadyNow();
        foreach (var call in calls)
        {
            // Each call is judged by the breaker of the node it goes to: a dead node fails only its own slots' calls.
            call.Breaker = standalone ? _breaker : BreakerOf(connection!, call.Slot, now);
            if (!call.Breaker.TryEnter(now))
            {
                foreach (var group in call.Groups)
                {
                    CountFailure("circuit_open");
                    group.Failed = true;
                }

                continue;
            }

            try
            {
                Send(call, checks, batch, null);
            }
            catch (Exception ex)
            {
                // Nothing was sent: the call's groups are answered by the failure mode.
                foreach (var group in call.Groups)
                {
                    group.Failed = true;
                }

                Fail("error", ex, call.Breaker);
                continue;
            }

            (round.Calls ??= []).Add(call);
        }

        return round;
    }

    private static bool AllOnSlot(List<Group> groups, int? slot)
    {
        foreach (var group in groups)
        {
            if (group.Slot != slot)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The identity groups of one stage, in the order of their first checks.</summary>
    private static List<Group> Groups(Batch batch, int stage)
    {
        var checks = batch.Checks.Span;
        var ends = batch.StageEnds.Span;
        var start = stage == 0 ? 0 : ends[stage - 1];
        var end = ends[stage];
        Span<bool> grouped = end - start <= 64 ? stackalloc bool[end - start] : new bool[end - start];
        grouped.Clear();
        var groups = new List<Group>(1);
        for (var i = start; i < end; i++)
        {
            if (grouped[i - start])
            {
                continue;
            }

            var identity = checks[i].Key.Identity;
            var members = new List<int>(1);
            for (var j = i; j < end; j++)
            {
                if (!grouped[j - start] && checks[j].Key.Identity == identity)
                {
                    grouped[j - start] = true;
                    members.Add(j);
                }
            }

            groups.Add(new Group(members, stage));
        }

        return groups;
    }

    /// <summary>
    /// Answers a group's checks locally where it can and counts the rest as remote; <see langword="true"/> when the
    /// over-limit cache denies an enforced check of it, which rejects its stage.
    /// </summary>
    private bool PlanGroup(Batch batch, Group group, ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
    {
        var plan = batch.Plan;
        var localNow = batch.LocalNow;

        // The over-limit cache: one cached denial of an enforced check denies the identity without Redis.
        var denied = false;
        foreach (var k in group.Members)
        {
            if (CacheDenies(checks[k], localNow, out var cached))
            {
                plan[k] = Kind.Cached;
                outcomes[k] = new StoreOutcome(cached, false, 0);
                denied |= !checks[k].IsShadow;
            }
        }

        if (denied)
        {
            foreach (var k in group.Members)
            {
                if (plan[k] != Kind.Cached)
                {
                    plan[k] = Kind.Unevaluated;
                    outcomes[k] = Unevaluated(checks[k]);
                }
            }

            CountLocal(group.Members.Count, "over_limit_cache");
            return true;
        }

        foreach (var k in group.Members)
        {
            if (plan[k] == Kind.Cached)
            {
                CountLocal(1, "over_limit_cache");
                continue;
            }

            if (IsLeased(checks[k]))
            {
                switch (_slices.TryTake(checks[k], localNow, out var left))
                {
                    case LeaseSlices.Take.Local:
                        plan[k] = Kind.Leased;
                        outcomes[k] = new StoreOutcome(new LimitOutcome(true, left, _slices.Lifetime(checks[k], localNow), 0), true, 0);
                        CountLocal(1, "leased_slice");
                        continue;
                    case LeaseSlices.Take.Acquire:
                        plan[k] = Kind.Acquire;
                        group.RemoteCount++;
                        continue;
                }
            }

            plan[k] = Kind.Remote;
            group.RemoteCount++;
        }

        return false;
    }

    /// <summary>
    /// Answers the failed groups of a round by the failure mode, stage by stage, and finds the first stage that rejects;
    /// the groups after it are given back. <see langword="true"/> when the batch is decided, with
    /// <paramref name="next"/> the number of stages decided; otherwise <paramref name="next"/> is the stage to plan next.
    /// </summary>
    private bool Settle(Batch batch, Round round, out int next)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var ends = batch.StageEnds.Span;
        var groups = round.Groups;
        var index = 0;
        for (var stage = round.First; stage <= round.Last; stage++)
        {
            for (; index < groups.Count && groups[index].Stage == stage; index++)
            {
                var group = groups[index];
                if (group.Failed || (group.RemoteCount > 0 && !group.Evaluated))
                {
                    Fallback(group, checks, outcomes, batch.Plan);
                }
            }

            if (Rejects(ends, checks, outcomes, stage))
            {
                // The stages after it are not decided: give back what their groups took, and write nothing for them.
                for (; index < groups.Count; index++)
                {
                    Abandon(groups[index], checks, batch.Plan);
                    foreach (var k in groups[index].Members)
                    {
                        outcomes[k] = default;
                    }
                }

                next = stage + 1;
                return true;
            }
        }

        next = round.Last + 1;
        if (next == ends.Length)
        {
            return true;
        }

        // Rounds follow: the leases this one granted are kept in view, to be released should the decision be given up on.
        round.Earlier = batch.Settled;
        batch.Settled = round;
        return false;
    }

    private static bool Rejects(ReadOnlySpan<int> ends, ReadOnlySpan<RateLimitCheck> checks, ReadOnlySpan<StoreOutcome> outcomes, int stage)
    {
        var start = stage == 0 ? 0 : ends[stage - 1];
        return StagedDecisions.Rejects(checks[start..ends[stage]], outcomes[start..ends[stage]]);
    }

    private void Send(Call call, ReadOnlySpan<RateLimitCheck> checks, Batch batch, long? calendarNow)
    {
        var plan = batch.Plan;
        var remote = 0;
        foreach (var group in call.Groups)
        {
            remote += group.RemoteCount;
        }

        var keys = new RedisKey[remote];
        var values = new RedisValue[2 + (2 * call.Groups.Count) + (remote * Stride)];
        values[0] = batch.ServerNow is { } now ? now : RedisValue.EmptyString;
        values[1] = call.Groups.Count;
        var n = 0;
        var at = 2;
        foreach (var group in call.Groups)
        {
            values[at++] = group.Stage;
            values[at++] = group.RemoteCount;
            group.Remote = new int[group.RemoteCount];
            group.LeaseIds = null;
            var g = 0;
            foreach (var k in group.Members)
            {
                if (plan[k] is not (Kind.Remote or Kind.Acquire))
                {
                    continue;
                }

                ref readonly var check = ref checks[k];
                var limit = check.Limit;
                group.Remote[g] = k;
                keys[n] = RedisKeys.For(_prefix, check.Key, limit.Algorithm);
                values[at + 1] = check.Cost;
                values[at + 2] = (check.IsShadow ? 1 : 0) + (check.IsProbe ? 2 : 0);
                long p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
                switch (limit.Algorithm)
                {
                    case LimitAlgorithm.Gcra:
                        values[at] = 0;
                        (p1, p2, p3) = (limit.IntervalMicroseconds, limit.ToleranceMicroseconds, limit.Burst);
                        break;
                    case LimitAlgorithm.SlidingWindow:
                        values[at] = 1;
                        (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                        break;
                    case LimitAlgorithm.FixedWindow:
                        values[at] = 2;
                        (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                        break;
                    case LimitAlgorithm.Quota:
                        values[at] = 3;
                        (p1, p2) = (limit.Amount, limit.PeriodMicroseconds);
                        if (limit.Calendar is not null)
                        {
                            p3 = 1;
                            (p4, p5) = limit.CalendarPeriod(calendarNow ?? batch.LocalNow);
                            p6 = limit.CalendarPeriod(p5).End;
                        }

                        break;
                    default:
                        values[at] = 4;
                        var leaseId = RedisLeaseBit | (Random.Shared.NextInt64() & (RedisLeaseBit - 1));
                        (group.LeaseIds ??= new long[group.RemoteCount])[g] = leaseId;
                        values[at + 3] = limit.Amount;
                        values[at + 4] = limit.LeaseTimeoutMicroseconds;
                        values[at + 5] = LeaseMember(leaseId, check.Cost);
                        for (var f = 6; f < Stride; f++)
                        {
                            values[at + f] = 0;
                        }

                        n++;
                        g++;
                        at += Stride;
                        continue;
                }

                if (plan[k] == Kind.Acquire)
                {
                    p7 = limit.LeasedSlice;
                }

                values[at + 3] = p1;
                values[at + 4] = p2;
                values[at + 5] = p3;
                values[at + 6] = p4;
                values[at + 7] = p5;
                values[at + 8] = p6;
                values[at + 9] = p7;
                n++;
                g++;
                at += Stride;
            }
        }

        CountRoundTrip();
        call.Keys = keys;
        call.Values = values;
        // On a single node, concurrent decisions' calls share runs; a test's own clock (a given now) goes alone.
        call.Task = call.Slot == NoSlot && batch.ServerNow is null && !call.SendScript
            ? _calls.Evaluate(keys, values, batch.Deadline, batch.Cancellation)
            : Evaluate(keys, values, call.SendScript);
    }

    /// <summary>Waits for a round's calls (resending after NOSCRIPT or a calendar skew) and applies their answers.</summary>
    private async ValueTask Complete(Batch batch, Round round, CancellationToken cancellationToken)
    {
        var calls = round.Calls!;
        try
        {
            await AwaitCalls(calls, batch, cancellationToken).ConfigureAwait(false);

            // Calls answered without their script having run are sent again, together, while time is left:
            // - NOSCRIPT (the server lost its scripts: SCRIPT FLUSH, a restart, a failover, a new cluster owner): at
            //   once, with the script's text (StackExchange.Redis sends EVAL and caches it); at most twice a call;
            // - a calendar period that turned between this clock and the server's: at once, with the server's periods,
            //   once a call;
            // - TRYAGAIN (a slot caught half-migrated, some of an identity's keys moved and some not): after a short,
            //   growing pause, as it was last sent. Moving a slot's keys takes milliseconds; a migration stuck longer
            //   than the timeout leaves the call to the failure mode.
            // One loop, so that a call resent for one reason and answered with another is still sent again. A call that
            // finds no time left is not sent again (see Late).
            var pause = TryAgainFirstPause;
            while (Unanswered(calls, out var onlyTryAgain) is { } again)
            {
                var paused = false;
                if (onlyTryAgain && Remaining(batch.Deadline) > pause)
                {
                    await Task.Delay(pause, TimeProvider.System, cancellationToken).ConfigureAwait(false);
                    pause = pause * 2 < TryAgainLongestPause ? pause * 2 : TryAgainLongestPause;
                    paused = true;
                }

                if ((onlyTryAgain && !paused) || Remaining(batch.Deadline) == TimeSpan.Zero)
                {
                    // No time left to send them again (nor, for TRYAGAIN, to pause first): answered as timed out.
                    foreach (var call in again)
                    {
                        call.Late = true;
                    }

                    break;
                }

                foreach (var call in again)
                {
                    SendAgain(call, batch);
                }

                await AwaitCalls(again, batch, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up: give back what the round took locally, and in Redis the leases the scripts may take.
            // The decision throws, so the caller never sees the leases earlier rounds granted either: release them too.
            foreach (var group in round.Groups)
            {
                Abandon(group, batch.Checks.Span, batch.Plan);
            }

            foreach (var call in calls)
            {
                ReleaseAbandoned(call, batch.Checks.Span);
            }

            ReleaseSettled(batch);
            throw;
        }

        Exception? failure = null;
        var timedOut = false;
        var failed = false;
        CircuitBreaker? opened = null;
        var now = SteadyNow();
        foreach (var call in calls)
        {
            var task = call.Task!;

            // Read once: a task completing between two reads of its state would be taken for a failure.
            var status = task.Status;
            if (call.Late || CallCoalescer.WasNeverSent(task))
            {
                // Answered (NOSCRIPT, or the server's calendar) but not sent again for want of time, or never sent (its
                // decision's time ran out while it waited for a run): answered by the failure mode as timed out, and
                // not held against the node.
                timedOut = failed = true;
                failure ??= NoTimeLeft();
                foreach (var group in call.Groups)
                {
                    group.Failed = true;
                }

                continue;
            }

            if (status == TaskStatus.RanToCompletion)
            {
                if (Apply(call, task.Result, batch))
                {
                    if (call.Breaker!.OnSuccess())
                    {
                        LogBreakerClosed(_logger, call.Breaker.Node);
                    }

                    continue;
                }

                failure ??= new RedisException("The decision script answered in an unexpected shape.");
            }
            else if (status is not (TaskStatus.Faulted or TaskStatus.Canceled))
            {
                Observe(task);
                ReleaseAbandoned(call, batch.Checks.Span);
                timedOut = true;
                failure ??= new TimeoutException($"Redis did not answer within {_options.Timeout}.");
            }
            else
            {
                failure ??= task.Exception?.InnerException ?? new TaskCanceledException(task);
            }

            failed = true;
            opened = call.Breaker!.OnFailure(now) ? call.Breaker : opened;
            foreach (var group in call.Groups)
            {
                group.Failed = true;
            }
        }

        if (failed)
        {
            // Counted and logged once for the round; each failed call counted against its own node's breaker.
            Report(timedOut ? "timeout" : "error", failure, opened);
        }
    }

    /// <summary>
    /// Frees the concurrency leases a call may still take after it was given up (its caller went away, or it timed out):
    /// the request will never release them. Each release (release.lua) is queued behind the decision on the same
    /// connection, so it runs after it; releasing a lease the decision never granted does nothing.
    /// </summary>
    private void ReleaseAbandoned(Call call, ReadOnlySpan<RateLimitCheck> checks)
    {
        List<(RateLimitCheck Check, long LeaseId)>? leases = null;
        foreach (var group in call.Groups)
        {
            if (group.LeaseIds is not { } ids)
            {
                continue;
            }

            var remote = group.Remote!;
            for (var n = 0; n < remote.Length; n++)
            {
                ref readonly var check = ref checks[remote[n]];
                if (check.Limit.Algorithm == LimitAlgorithm.Concurrency && ids[n] != 0)
                {
                    (leases ??= []).Add((check, ids[n]));
                }
            }
        }

        if (leases is null || call.Task is not { } task)
        {
            return;
        }

        if (!CallCoalescer.WasQueued(task))
        {
            // Sent (alone): the release follows the call on the connection, so Redis runs it after the script.
            QueueReleases(leases);
            return;
        }

        // A call that waited for a run may not be written yet: released once it is answered, and not at all if it was
        // never sent (its decision's time ran out, or it was cancelled, first: then it took nothing).
        _ = task.ContinueWith(
            (done, state) =>
            {
                if (!CallCoalescer.WasNeverSent(done))
                {
                    QueueReleases((List<(RateLimitCheck Check, long LeaseId)>)state!);
                }
            },
            leases,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void QueueReleases(List<(RateLimitCheck Check, long LeaseId)> leases)
    {
        foreach (var (check, leaseId) in leases)
        {
            QueueRelease(check, leaseId);
        }
    }

    /// <summary>
    /// Frees the leases granted (in Redis, or by the local fallback) in the rounds settled before the caller gave up on
    /// the decision: it throws, so the caller sees no outcome and will never release them. Only the leases this batch
    /// recorded as granted (<see cref="Group.Leases"/>), never ids read back from the outcomes, which the caller may have
    /// rented with another request's leases still in them. The round given up on granted nothing (the leases its scripts
    /// may still take are <see cref="ReleaseAbandoned"/>'s). When a later round fails or times out instead, the outcomes
    /// are returned and the caller releases these leases itself: nothing is released here then.
    /// </summary>
    private void ReleaseSettled(Batch batch)
    {
        var checks = batch.Checks.Span;
        for (var round = batch.Settled; round is not null; round = round.Earlier)
        {
            foreach (var group in round.Groups)
            {
                if (group.Leases is not { } leases)
                {
                    continue;
                }

                for (var m = 0; m < leases.Length; m++)
                {
                    if (leases[m] == 0)
                    {
                        continue;
                    }

                    ref readonly var check = ref checks[group.Members[m]];
                    if ((leases[m] & RedisLeaseBit) != 0)
                    {
                        QueueRelease(check, leases[m]);
                    }
                    else
                    {
                        // The in-memory store releases synchronously.
                        var released = _local.ReleaseAsync(check, leases[m], CancellationToken.None);
                        if (!released.IsCompletedSuccessfully)
                        {
                            Observe(released.AsTask());
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Queues the release (release.lua) of a Redis lease without waiting for it, behind any call already sent on the same
    /// connection; releasing a lease that was never granted, or twice, does nothing.
    /// </summary>
    private void QueueRelease(in RateLimitCheck check, long leaseId)
    {
        try
        {
            var key = RedisKeys.For(_prefix, check.Key, LimitAlgorithm.Concurrency);
            // Under Sentinel the master may have changed since the call: then the script ran on a node whose writes the
            // failover discards, and this removal finds nothing.
            if (Current is { } connection)
            {
                _ = Release(connection, key, check, leaseId, CommandFlags.FireAndForget | CommandFlags.DemandMaster);
            }
        }
        catch (Exception ex)
        {
            // Never thrown into a decision (a command map may even forbid EVAL): the lease frees itself at its timeout.
            CountFailure("release");
            LogAbandonedReleaseFailed(_logger, ex);
        }
    }

    /// <summary>
    /// Waits for the calls until the batch's deadline; a failure or a timeout is read from each call's task. A wait that
    /// times out ends the batch's time (<see cref="Batch.Expire"/>), whatever the timer's granularity left on the clock.
    /// </summary>
    private static async Task AwaitCalls(List<Call> calls, Batch batch, CancellationToken cancellationToken)
    {
        var all = calls.Count == 1 ? calls[0].Task! : Task.WhenAll(calls.Select(static c => (Task)c.Task!));
        try
        {
            await all.WaitAsync(Remaining(batch.Deadline), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!all.IsCompleted)
        {
            // The wait's own timeout, not a call's (StackExchange.Redis's RedisTimeoutException is one too).
            batch.Expire();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Each call is answered by its own task's state.
        }
        finally
        {
            if (!all.IsCompleted)
            {
                Observe(all);
            }
        }
    }

    /// <summary>Turns a script's answer into outcomes; <see langword="false"/> when the answer has the wrong shape.</summary>
    private bool Apply(Call call, RedisResult result, Batch batch)
    {
        if (result.Resp2Type != ResultType.Array || result.Length < 3)
        {
            return false;
        }

        for (var i = 0; i < result.Length; i++)
        {
            if (result[i].Resp2Type != ResultType.Integer)
            {
                return false;
            }
        }

        var evaluated = (long)result[2];
        if ((long)result[0] != 1 || evaluated < 0 || evaluated > call.Groups.Count)
        {
            return false;
        }

        var length = 3;
        for (var g = 0; g < evaluated; g++)
        {
            length += 5 * call.Groups[g].RemoteCount;
        }

        if (result.Length != length)
        {
            return false;
        }

        var now = (long)result[1];
        var at = 3;
        for (var g = 0; g < evaluated; g++)
        {
            var group = call.Groups[g];
            Apply(group, result, at, now, batch);
            group.Evaluated = true;
            at += 5 * group.RemoteCount;
        }

        return true;
    }

    /// <summary>Turns one group's part of a script's answer, from <paramref name="at"/>, into outcomes.</summary>
    private void Apply(Group group, RedisResult result, int at, long now, Batch batch)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var plan = batch.Plan;
        var remote = group.Remote!;
        var denied = false;
        for (var n = 0; n < remote.Length; n++)
        {
            denied |= (long)result[at + (5 * n)] == 0 && !checks[remote[n]].IsShadow;
        }

        for (var n = 0; n < remote.Length; n++)
        {
            var k = remote[n];
            ref readonly var check = ref checks[k];
            var i = at + (5 * n);
            var allowed = (long)result[i] == 1;
            var state = new LimitState((long)result[i + 1], (long)result[i + 2], (long)result[i + 3]);
            var granted = (long)result[i + 4];
            var committed = allowed && !denied && !check.IsProbe;
            LimitOutcome outcome;
            var leaseId = 0L;
            if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                outcome = LimitMath.Concurrency(check.Limit, state.A, state.B, state.C, now, check.Cost);
                if (committed && check.Cost > 0)
                {
                    leaseId = group.LeaseIds![n];
                    group.Hold(k, leaseId);
                }
            }
            else
            {
                var sliced = committed && granted > check.Cost;
                outcome = LimitMath.Decide(check.Limit, state, now, sliced ? granted : check.Cost, out _);
                if (plan[k] == Kind.Acquire)
                {
                    var left = _slices.Acquired(check, committed ? granted : 0, batch.LocalNow);
                    if (sliced)
                    {
                        outcome = outcome with { Remaining = outcome.Remaining + left };
                    }
                }
            }

            if (outcome.IsAllowed != allowed)
            {
                Interlocked.Increment(ref _mismatchCount);
                LogMismatch(_logger, check.Limit.ToString(), allowed, outcome.IsAllowed);
                outcome = outcome with { IsAllowed = allowed };
            }

            if (_cache is not null && IsCacheable(check))
            {
                _cache.Observe(check, state, now, batch.LocalNow, outcome, committed);
            }

            outcomes[k] = new StoreOutcome(outcome, committed, leaseId);
        }

        if (denied)
        {
            foreach (var k in group.Members)
            {
                if (plan[k] == Kind.Leased)
                {
                    _slices.Refund(checks[k]);
                    outcomes[k] = outcomes[k] with { Committed = false };
                }
            }
        }
    }

    private static void Observe(Task task) =>
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private long Deadline() => TimeProvider.System.GetTimestamp() + (long)(_options.Timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);

    /// <summary>What a call not sent for want of time is reported with.</summary>
    private TimeoutException NoTimeLeft() => new($"No time was left of the decision's {_options.Timeout} to send the Redis call.");

    private static TimeSpan Remaining(long deadline)
    {
        var left = TimeProvider.System.GetElapsedTime(TimeProvider.System.GetTimestamp(), deadline);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>Sends the script by its hash, or (<paramref name="sendScript"/>, after NOSCRIPT) as text, which the library caches.</summary>
    private Task<RedisResult> Evaluate(RedisKey[] keys, RedisValue[] values, bool sendScript)
    {
        try
        {
            var database = (Current ?? throw NoMaster()).GetDatabase();
            return sendScript
                ? database.ScriptEvaluateAsync(Script, keys, values, CommandFlags.DemandMaster)
                : database.ScriptEvaluateAsync(ScriptHash, keys, values, CommandFlags.DemandMaster);
        }
        catch (Exception ex)
        {
            // RedisCommandException (a disabled command, a cross-slot batch, a primary-only command to a replica) and
            // every other synchronous failure becomes a failed call, answered by the failure mode.
            return Task.FromException<RedisResult>(ex);
        }
    }

    /// <summary>
    /// The calls to send again (see <see cref="Complete"/>), each with <see cref="Call.Again"/> saying why, or
    /// <see langword="null"/>; <paramref name="onlyTryAgain"/> when every one of them was answered TRYAGAIN.
    /// </summary>
    private static List<Call>? Unanswered(List<Call> calls, out bool onlyTryAgain)
    {
        List<Call>? again = null;
        onlyTryAgain = true;
        foreach (var call in calls)
        {
            var task = call.Task!;
            if (call.Late)
            {
                continue;
            }

            if (task.IsFaulted && task.Exception?.InnerException is RedisServerException error)
            {
                if (error.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal))
                {
                    call.Again = Resend.TryAgain;
                }
                else if (error.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal) && call.ScriptResends < 2)
                {
                    call.Again = Resend.NoScript;
                    onlyTryAgain = false;
                }
                else
                {
                    continue;
                }
            }
            else if (task.IsCompletedSuccessfully && IsCalendarSkew(task.Result) && !call.Resent)
            {
                call.Again = Resend.Calendar;
                onlyTryAgain = false;
            }
            else
            {
                continue;
            }

            (again ??= []).Add(call);
        }

        return again;
    }

    /// <summary>Sends <paramref name="call"/> again, as <see cref="Call.Again"/> says.</summary>
    private void SendAgain(Call call, Batch batch)
    {
        switch (call.Again)
        {
            case Resend.NoScript:
                call.SendScript = true;
                call.ScriptResends++;
                CountRoundTrip();
                call.Task = Evaluate(call.Keys!, call.Values!, sendScript: true);
                break;
            case Resend.Calendar:
                call.Resent = true;
                try
                {
                    Send(call, batch.Checks.Span, batch, (long)call.Task!.Result[1]);
                }
                catch (Exception ex)
                {
                    call.Task = Task.FromException<RedisResult>(ex);
                }

                break;
            default:
                CountRoundTrip();
                call.Task = Evaluate(call.Keys!, call.Values!, call.SendScript);
                break;
        }
    }

    private static bool IsCalendarSkew(RedisResult result) =>
        result.Resp2Type == ResultType.Array && result.Length == 2 && result[0].Resp2Type == ResultType.Integer
        && result[1].Resp2Type == ResultType.Integer && (long)result[0] == -1;

    /// <summary>Gives back what a group took locally when the group will not be decided.</summary>
    private void Abandon(Group group, ReadOnlySpan<RateLimitCheck> checks, Kind[] plan)
    {
        foreach (var k in group.Members)
        {
            if (plan[k] == Kind.Leased)
            {
                _slices.Refund(checks[k]);
            }
            else if (plan[k] == Kind.Acquire)
            {
                _slices.Acquired(checks[k], 0, 0);
            }
        }
    }

    /// <summary>
    /// Answers a whole group by the failure mode: each check by its own (its rule's), or the store's. The group stays all
    /// or nothing: the checks answered locally are decided together, and only read (cost 0) when a closed check of the
    /// group denies the request.
    /// </summary>
    private void Fallback(Group group, ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes, Kind[] plan)
    {
        Abandon(group, checks, plan);
        var members = group.Members;
        int open = 0, closed = 0, local = 0;
        long retry = 0;
        var closedDenies = false;
        foreach (var k in members)
        {
            switch (ModeOf(checks[k]))
            {
                case StoreFailureMode.Open:
                    outcomes[k] = new StoreOutcome(new LimitOutcome(true, checks[k].Limit.Amount, 0, 0), false, 0, true);
                    open++;
                    break;
                case StoreFailureMode.Closed:
                    retry = retry > 0 ? retry : Math.Max(BreakerOf(group.Slot).RetryAfter(SteadyNow()), ClosedRetryMicroseconds);
                    outcomes[k] = new StoreOutcome(new LimitOutcome(false, 0, 0, retry), false, 0, true);
                    closedDenies |= !checks[k].IsShadow;
                    closed++;
                    break;
                default:
                    local++;
                    break;
            }
        }

        if (local > 0)
        {
            var localChecks = new RateLimitCheck[local];
            var answers = new StoreOutcome[local];
            var m = 0;
            foreach (var k in members)
            {
                if (ModeOf(checks[k]) == StoreFailureMode.Local)
                {
                    localChecks[m++] = checks[k] with
                    {
                        Limit = _localLimits.GetValue(checks[k].Limit, _divide),
                        Cost = closedDenies ? 0 : checks[k].Cost,
                    };
                }
            }

            _local.Decide(localChecks, answers);
            m = 0;
            foreach (var k in members)
            {
                if (ModeOf(checks[k]) == StoreFailureMode.Local)
                {
                    var answer = answers[m++];
                    outcomes[k] = answer with { IsStoreFailure = true, Committed = answer.Committed && !closedDenies };
                    if (answer.LeaseId != 0)
                    {
                        group.Hold(k, answer.LeaseId);
                    }
                }
            }
        }

        CountFallbacks(open, "open");
        CountFallbacks(closed, "closed");
        CountFallbacks(local, "local");
    }

    /// <summary>The failure mode of one check: its rule's, or the store's.</summary>
    private StoreFailureMode ModeOf(in RateLimitCheck check) =>
        check.OnStoreFailure == StoreFailureMode.Default ? _options.FailureMode : check.OnStoreFailure;

    private void CountFallbacks(int count, string mode)
    {
        if (count > 0)
        {
            _fallbacks.Add(count, new KeyValuePair<string, object?>("mode", mode));
        }
    }

    /// <summary>
    /// A failed call that is not a decision (a release): on a single node it counts against the breaker; on a cluster
    /// against none, since the decisions sent to that node judge it themselves.
    /// </summary>
    private void Fail(string reason, Exception? exception) => Fail(reason, exception, Volatile.Read(ref _slotRoutes) is null ? _breaker : null);

    private void Fail(string reason, Exception? exception, CircuitBreaker? breaker) =>
        Report(reason, exception, breaker is not null && breaker.OnFailure(SteadyNow()) ? breaker : null);

    /// <summary>
    /// The breaker a call to <paramref name="slot"/> is judged by: the master's that owns the slot in the cluster's
    /// configuration as the connection last read it. The slot's route is kept, so a closed breaker costs an array read;
    /// an open one looks again (at most every 100 ms), so a slot that moved (a failover, a resharding) follows its new
    /// master.
    /// </summary>
    /// <remarks>
    /// Not <see cref="IConnectionMultiplexer.GetServer(RedisKey, object?, CommandFlags)"/>: for a slot whose master is
    /// disconnected it names any connected one, which would then count the dead master's failures.
    /// </remarks>
    private CircuitBreaker BreakerOf(IConnectionMultiplexer connection, int slot, long now)
    {
        if (slot is < 0 or >= SlotCount)
        {
            return _breaker;
        }

        var routes = Volatile.Read(ref _slotRoutes);
        if (routes is null)
        {
            routes = new SlotRoute?[SlotCount];
            routes = Interlocked.CompareExchange(ref _slotRoutes, routes, null) ?? routes;
        }

        // A master's closed breaker is kept; an open one, or the store's own (no master was known), is looked up again at
        // most every 100 ms.
        var route = Volatile.Read(ref routes[slot]);
        if (route is not null && ((route.Breaker.IsClosed && !ReferenceEquals(route.Breaker, _breaker)) || now - route.RoutedAt < RerouteMicroseconds))
        {
            return route.Breaker;
        }

        // No master known for the slot (no node connected yet, or none left): the store's own breaker judges it.
        var breaker = OwnerOf(connection, slot) is { } endPoint ? _nodeBreakers.GetOrAdd(endPoint, _newNodeBreaker) : _breaker;
        Volatile.Write(ref routes[slot], new SlotRoute(breaker, now));
        return breaker;
    }

    /// <summary>The endpoint of the master that owns <paramref name="slot"/>, by the first connected node's cluster configuration.</summary>
    private static EndPoint? OwnerOf(IConnectionMultiplexer connection, int slot)
    {
        try
        {
            foreach (var server in connection.GetServers())
            {
                if (server.IsConnected && server.ClusterConfiguration?.GetBySlot(slot)?.EndPoint is { } endPoint)
                {
                    return endPoint;
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or InvalidOperationException or NotSupportedException)
        {
            // Not known: the caller uses the store's own breaker.
        }

        return null;
    }

    /// <summary>The breaker last used for <paramref name="slot"/>, without asking the connection; the store's own if none.</summary>
    private CircuitBreaker BreakerOf(int slot) =>
        slot is >= 0 and < SlotCount && Volatile.Read(ref _slotRoutes) is { } routes && Volatile.Read(ref routes[slot]) is { } route
            ? route.Breaker
            : _breaker;

    private static string NameOf(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => string.Create(CultureInfo.InvariantCulture, $"{dns.Host}:{dns.Port}"),
        _ => endPoint.ToString() ?? "redis",
    };

    /// <summary>
    /// Counts a failure and logs it (at most once a second, and every breaker opening); <paramref name="opened"/> is the
    /// breaker the failure opened, if it did.
    /// </summary>
    private void Report(string reason, Exception? exception, CircuitBreaker? opened)
    {
        CountFailure(reason);
        var now = SteadyNow();
        var last = Volatile.Read(ref _lastLog);
        if (opened is null && now - last < LogIntervalMicroseconds)
        {
            Interlocked.Increment(ref _suppressedLogs);
            return;
        }

        if (Interlocked.CompareExchange(ref _lastLog, now, last) != last && opened is null)
        {
            Interlocked.Increment(ref _suppressedLogs);
            return;
        }

        var suppressed = Interlocked.Exchange(ref _suppressedLogs, 0);
        var mode = _options.FailureMode.ToString().ToLowerInvariant();
        if (opened is not null)
        {
            LogBreakerOpened(_logger, reason, opened.Node, mode, _options.BreakerDuration, suppressed, exception);
        }
        else
        {
            LogFailure(_logger, reason, mode, suppressed, exception);
        }
    }

    private void CountRoundTrip()
    {
        Interlocked.Increment(ref _roundTripCount);
        _roundTrips.Add(1);
    }

    private void CountFailure(string reason)
    {
        Interlocked.Increment(ref _failureCount);
        _failures.Add(1, new KeyValuePair<string, object?>("reason", reason));
    }

    private void CountLocal(int count, string source)
    {
        Interlocked.Add(ref _localDecisionCount, count);
        _localDecisions.Add(count, new KeyValuePair<string, object?>("source", source));
    }

    private long LocalNow() => (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    /// <summary>
    /// Microseconds since the store was made, on the monotonic clock: what the breakers, the slot routes and the log
    /// interval measure durations by, so a wall clock stepped back (NTP, a VM resumed) neither holds a breaker open nor
    /// silences the failure log for the size of the step.
    /// </summary>
    private long SteadyNow() => _time.GetElapsedTime(_started).Ticks / TimeSpan.TicksPerMicrosecond;

    [LoggerMessage(1, LogLevel.Warning, "Redis {Reason}: answering by on_failure={Mode}, or a rule's own ({Suppressed} earlier failures not logged)")]
    private static partial void LogFailure(ILogger logger, string reason, string mode, long suppressed, Exception? exception);

    [LoggerMessage(2, LogLevel.Warning, "Redis {Reason}: circuit breaker of {Node} open, answering its keys by on_failure={Mode} (or a rule's own) for {Duration} before probing ({Suppressed} earlier failures not logged)")]
    private static partial void LogBreakerOpened(ILogger logger, string reason, string node, string mode, TimeSpan duration, long suppressed, Exception? exception);

    [LoggerMessage(8, LogLevel.Information, "Redis circuit breaker of {Node} closed: its probe succeeded, its keys are decided in Redis again")]
    private static partial void LogBreakerClosed(ILogger logger, string node);

    [LoggerMessage(4, LogLevel.Warning, "A concurrency lease of a Redis call given up on could not be released; it frees itself at its lease timeout")]
    private static partial void LogAbandonedReleaseFailed(ILogger logger, Exception exception);

    [LoggerMessage(9, LogLevel.Error, "Connecting to Redis in the background failed; decisions follow on_failure")]
    private static partial void LogConnectFailed(ILogger logger, Exception exception);

    [LoggerMessage(3, LogLevel.Error, "The Redis script and the engine disagree on {Limit}: script allowed={Script}, engine allowed={Engine}")]
    private static partial void LogMismatch(ILogger logger, string limit, bool script, bool engine);

    private enum Kind : byte
    {
        Remote,
        Acquire,
        Leased,
        Cached,
        Unevaluated,
    }

    /// <summary>The state of one decision: the batch, its stages, and what was planned for each check.</summary>
    private sealed class Batch(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, long? serverNow, long localNow, long deadline, CancellationToken cancellation)
    {
        /// <summary>The decision's caller's token: a call still waiting for a run when it fires is never sent.</summary>
        public CancellationToken Cancellation { get; } = cancellation;

        public ReadOnlyMemory<RateLimitCheck> Checks { get; } = checks;

        public ReadOnlyMemory<int> StageEnds { get; } = stageEnds;

        public Memory<StoreOutcome> Outcomes { get; } = outcomes;

        public long? ServerNow { get; } = serverNow;

        public long LocalNow { get; } = localNow;

        /// <summary>A <see cref="TimeProvider.System"/> timestamp; brought forward to now by <see cref="Expire"/>.</summary>
        public long Deadline { get; private set; } = deadline;

        public Kind[] Plan { get; } = new Kind[checks.Length];

        /// <summary>The last round settled before the rounds that follow it, linked to the ones before (<see cref="Round.Earlier"/>).</summary>
        public Round? Settled { get; set; }

        /// <summary>Ends the decision's time: a wait for it timed out, so no call is sent any more.</summary>
        public void Expire() => Deadline = Math.Min(Deadline, TimeProvider.System.GetTimestamp());
    }

    /// <summary>The stages from <see cref="First"/> to <see cref="Last"/>, decided by one set of calls sent together.</summary>
    private sealed class Round(int first)
    {
        public int First { get; } = first;

        public int Last { get; set; } = first;

        public List<Group> Groups { get; } = [];

        public List<Call>? Calls { get; set; }

        /// <summary>The round settled before this one, once this one is settled and rounds follow it.</summary>
        public Round? Earlier { get; set; }
    }

    /// <summary>The checks of one identity in one stage: they commit all or nothing.</summary>
    private sealed class Group(List<int> members, int stage)
    {
        public List<int> Members { get; } = members;

        public int Stage { get; } = stage;

        public int RemoteCount { get; set; }

        public int Slot { get; set; } = NoSlot;

        public int[]? Remote { get; set; }

        public long[]? LeaseIds { get; set; }

        public bool Evaluated { get; set; }

        public bool Failed { get; set; }

        /// <summary>
        /// By member, as in <see cref="Members"/>: the lease the decided group holds (granted in Redis, or by the local
        /// fallback), 0 for none; <see langword="null"/> while it holds none.
        /// </summary>
        public long[]? Leases { get; private set; }

        public void Hold(int check, long leaseId) => (Leases ??= new long[Members.Count])[Members.IndexOf(check)] = leaseId;
    }

    /// <summary>One script call: groups of one hash slot, in stage order.</summary>
    private sealed class Call(int slot)
    {
        public int Slot { get; } = slot;

        /// <summary>The breaker of the node the call goes to, which let it through.</summary>
        public CircuitBreaker? Breaker { get; set; }

        public List<Group> Groups { get; } = [];

        public Task<RedisResult>? Task { get; set; }

        public RedisKey[]? Keys { get; set; }

        public RedisValue[]? Values { get; set; }

        public bool Resent { get; set; }

        /// <summary>Answered (NOSCRIPT, TRYAGAIN, or the server's calendar) when no time was left to send it again: not sent again.</summary>
        public bool Late { get; set; }

        /// <summary>Why the call is being sent again.</summary>
        public Resend Again { get; set; }

        /// <summary>Sent as the script's text (after a NOSCRIPT), not by its hash.</summary>
        public bool SendScript { get; set; }

        /// <summary>How often the call was sent again after NOSCRIPT.</summary>
        public int ScriptResends { get; set; }
    }

    /// <summary>Why a call is sent again.</summary>
    private enum Resend : byte
    {
        TryAgain,
        NoScript,
        Calendar,
    }

    /// <summary>A hash slot's master's breaker, and when the connection was last asked which master that is.</summary>
    private sealed class SlotRoute(CircuitBreaker breaker, long routedAt)
    {
        public CircuitBreaker Breaker { get; } = breaker;

        public long RoutedAt { get; } = routedAt;
    }
}
