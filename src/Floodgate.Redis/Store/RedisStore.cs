using System.Diagnostics.Metrics;
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
public sealed partial class RedisStore : IRateLimitStore, IPermitReleaseNotifier, IAsyncDisposable, IDisposable
{
    /// <summary>The name of the meter the store reports on.</summary>
    public const string MeterName = "Floodgate.Redis";

    /// <summary>The Lua script that decides one identity's checks, as sent to Redis.</summary>
    public static readonly string Script = LoadScript("decide.lua");

    /// <summary>The Lua script that releases a concurrency lease and gives its permits back to the key's sum.</summary>
    internal static readonly string ReleaseScript = LoadScript("release.lua");

    /// <summary>The SHA-1 of <see cref="Script"/>, which <c>EVALSHA</c> names it by.</summary>
    private static readonly byte[] ScriptHash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(Script));

    private const int NoSlot = -1;

    private static readonly int[][] OneStageEnds = [.. Enumerable.Range(0, 65).Select(static n => new[] { n })];

    private static readonly Meter SharedMeter = new(MeterName);

    // Set once: at construction, or (a store made by Start) when its connection is made.
    private IConnectionMultiplexer? _connection;
    private SentinelMaster? _sentinel;
    private readonly bool _ownsConnection;

    /// <summary>
    /// Guards <see cref="_disposed"/> and the attaching of a connection made in the background: one made after disposal
    /// is closed at once.
    /// </summary>
    private readonly Lock _connectionLock = new();
    private bool _disposed;

    private readonly RedisStoreOptions _options;
    private readonly string _prefix;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly NodeBreakers _breakers;
    private readonly OverLimitCache? _cache;
    private readonly LeaseSlices _slices;
    private readonly CallCoalescer _calls;
    private readonly MemoryStore _local;
    private readonly ConditionalWeakTable<Limit, Limit> _localLimits = [];
    private readonly ConditionalWeakTable<Limit, Limit>.CreateValueCallback _divide;
    private readonly RedisStoreMetrics _metrics;
    private long _mismatchCount;
    private readonly long _started;

    /// <summary>The timeout, in <see cref="TimeProvider.System"/> ticks.</summary>
    private readonly long _timeoutTicks;

    /// <summary>
    /// How late (<see cref="TimeProvider.System"/> ticks) a look at a call judged later may come, or a work item queued
    /// behind the pool's queue may run, and still be on time: half the timeout, and at least a coarse timer's tick.
    /// Later, this process was starved, and Redis is not judged by it.
    /// </summary>
    private readonly long _lateTicks;

    /// <summary>
    /// How late a decision may see its deadline pass for Redis to be blamed at once (<see cref="TimeProvider.System"/>
    /// ticks): a tenth of the timeout. A look that late already suggests a CPU shared with busier threads, where the
    /// answer may be a thread's wake-up away; such a call is judged later, by a look that flushes the pool's queue.
    /// </summary>
    private readonly long _onTimeTicks;

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
        _timeoutTicks = (long)(options.Timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);
        _lateTicks = Math.Max(_timeoutTicks / 2, LateFloorTicks);
        _onTimeTicks = Math.Max(_timeoutTicks / 10, TimeProvider.System.TimestampFrequency / 1000);
        _breakers = new NodeBreakers(options.BreakerFailureThreshold, Micros(options.BreakerDuration));
        _cache = options.OverLimitCache ? new OverLimitCache(options.OverLimitCacheSize) : null;
        _slices = new LeaseSlices(Micros(options.LeaseSliceLifetime));
        // Kept even when the store's own mode is not local: a rule may ask for local answers on its own.
        _local = new MemoryStore(options.LocalStore, _time);
        var replicas = options.Replicas;
        // Each replica decides locally against its share: together they admit about the limit.
        _divide = limit => ReplicaShare.Of(limit, replicas);
        _metrics = new RedisStoreMetrics(meterFactory?.Create(MeterName) ?? SharedMeter);
        _calls = new CallCoalescer((keys, values) => Evaluate(keys, values, sendScript: false), options.Timeout, _metrics.Runs);
        PreloadScripts(sentinel);
    }

    /// <summary>
    /// The connection; for a store that follows Redis Sentinel (a configuration with <c>serviceName=</c>), the
    /// connection to the master the Sentinels name now, which changes at a failover.
    /// </summary>
    /// <exception cref="InvalidOperationException">The store follows Sentinel and no Sentinel has named a master yet, or
    /// (registered by <see cref="Microsoft.Extensions.DependencyInjection.RedisStoreServiceCollectionExtensions.AddFloodgateRedisStore"/>) it has not connected yet.</exception>
    public IConnectionMultiplexer Connection => Current ?? throw new InvalidOperationException(NotConnected());

    /// <summary>
    /// The connection the overrides, API keys, bans and events beside the store may share: the store's one connection,
    /// or <see langword="null"/> under Sentinel (the store replaces its connection at a failover) or before a
    /// background connection is made.
    /// </summary>
    internal IConnectionMultiplexer? SharedConnection => Volatile.Read(ref _sentinel) is null ? Volatile.Read(ref _connection) : null;

    /// <summary>The options in force.</summary>
    public RedisStoreOptions Options => _options;

    /// <summary>
    /// How many script calls this store has made: one per decision on a single node, where the calls of concurrent
    /// decisions share runs of the script; on a cluster one per hash slot and stage.
    /// </summary>
    public long RoundTrips => _metrics.RoundTrips;

    /// <summary>How many checks this store answered without Redis, from the over-limit cache or a leased slice.</summary>
    public long LocalDecisions => _metrics.LocalDecisions;

    /// <summary>How many Redis calls failed or timed out, or were skipped by the open circuit breaker.</summary>
    public long Failures => _metrics.Failures;

    /// <summary>
    /// Whether the circuit breaker lets calls through to Redis; on a cluster, where each master has its own, whether
    /// every one does (<see langword="false"/> while any master's is open, as when the whole cluster is down).
    /// </summary>
    public bool IsCircuitClosed => OpenCircuits == 0;

    /// <summary>How many circuit breakers are open: 0 or 1 on a single node or under Sentinel; on a cluster, per master.</summary>
    public int OpenCircuits => _breakers.OpenCount;

    internal long Mismatches => Volatile.Read(ref _mismatchCount);

    /// <summary>How many runs of the script the coalescer sent on a single node (a call sent alone is one).</summary>
    internal long Runs => _calls.Runs;

    internal int CachedKeys => _cache?.Count ?? 0;

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

        _metrics.CountLocal(checks.Length, "try_decide");
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
        if (check.Limit.QueueSize > 0)
        {
            // A process whose queues wait on this store hears other processes' releases on this connection.
            ListenForReleases();
        }

        if (connection is not null)
        {
            // An open breaker answers a release as it answers a decision: without waiting on a node known to be down.
            var slot = connection.HashSlot(key);
            var breaker = slot == NoSlot ? _breakers.Own : _breakers.For(connection, slot, SteadyNow());
            if (!breaker.IsClosed)
            {
                // The lease frees itself at its timeout.
                _metrics.CountFailure("circuit_open");
                return;
            }
        }

        Task? release = null;
        var sentAt = 0L;
        try
        {
            sentAt = TimeProvider.System.GetTimestamp();
            release = Release(connection ?? throw NoMaster(), key, check, leaseId, CommandFlags.DemandMaster);
            await release.WaitAsync(_options.Timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (release is { IsCompleted: false } && !KeepingUp(TimeProvider.System.GetTimestamp() - sentAt - _timeoutTicks))
        {
            // This process is behind: Redis is judged once it answers, or not.
            var verdict = new LateVerdict(this, TimeProvider.System.GetTimestamp() - sentAt - _timeoutTicks);
            JudgeLater(release, sentAt, _breakers.RoutesSlots ? null : _breakers.Own, verdict);
            verdict.Close(counted: false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The lease frees itself at its timeout.
            Fail(ex is TimeoutException ? "timeout" : "release", ex);
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
    /// The embedded script <paramref name="name"/>, with each of its <c>-- @include FILE</c> lines replaced by that
    /// script's text: a long script is kept in files by concern and sent to Redis as one.
    /// </summary>
    private static string LoadScript(string name)
    {
        using var stream = typeof(RedisStore).Assembly.GetManifestResourceStream("Floodgate.Redis." + name)
            ?? throw new InvalidOperationException($"The embedded script Floodgate.Redis.{name} is missing from the assembly.");
        using var reader = new StreamReader(stream);
        var text = new System.Text.StringBuilder();
        while (reader.ReadLine() is { } line)
        {
            text.Append(line.StartsWith(IncludeLine, StringComparison.Ordinal) ? LoadScript(line[IncludeLine.Length..].Trim()).TrimEnd('\n') : line).Append('\n');
        }

        return text.ToString();
    }

    private const string IncludeLine = "-- @include ";

    private static long Micros(TimeSpan span) => span.Ticks / TimeSpan.TicksPerMicrosecond;

    private long LocalNow() => (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    /// <summary>
    /// Microseconds since the store was made, on the monotonic clock: what the breakers, the slot routes and the log
    /// interval measure durations by, so a wall clock stepped back (NTP, a VM resumed) neither holds a breaker open nor
    /// silences the failure log for the size of the step.
    /// </summary>
    private long SteadyNow() => _time.GetElapsedTime(_started).Ticks / TimeSpan.TicksPerMicrosecond;
}
