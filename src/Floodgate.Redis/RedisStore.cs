using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// A store whose state lives in Redis or Valkey, shared by every replica: each identity's checks are decided
/// atomically by one Lua script that mirrors the engine's math, all identities of a batch in one pipelined round trip.
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
/// timeout and a circuit breaker; while Redis is unreachable the store answers by <see cref="RedisStoreOptions.FailureMode"/>,
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
    public static readonly string Script = LoadScript();

    /// <summary>The SHA-1 of <see cref="Script"/>, which <c>EVALSHA</c> names it by.</summary>
    private static readonly byte[] ScriptHash = System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(Script));

    internal const int Stride = 10;
    private const long RedisLeaseBit = 1L << 62;
    private const long LogIntervalMicroseconds = 1_000_000;
    private const long ClosedRetryMicroseconds = 1_000_000;

    private static readonly Meter SharedMeter = new(MeterName);

    private readonly IConnectionMultiplexer _connection;
    private readonly bool _ownsConnection;
    private readonly RedisStoreOptions _options;
    private readonly string _prefix;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CircuitBreaker _breaker;
    private readonly OverLimitCache? _cache;
    private readonly LeaseSlices _slices;
    private readonly MemoryStore? _local;
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
    private long _lastLog = long.MinValue;
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
        : this(connection, false, options, timeProvider, logger, meterFactory)
    {
    }

    private RedisStore(IConnectionMultiplexer connection, bool owns, RedisStoreOptions options, TimeProvider? timeProvider, ILogger? logger, IMeterFactory? meterFactory)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(requireConfiguration: false);
        _connection = connection;
        _ownsConnection = owns;
        _options = options;
        _prefix = options.KeyPrefix;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _breaker = new CircuitBreaker(options.BreakerFailureThreshold, Micros(options.BreakerDuration));
        _cache = options.OverLimitCache ? new OverLimitCache(options.OverLimitCacheSize) : null;
        _slices = new LeaseSlices(Micros(options.LeaseSliceLifetime));
        _local = options.FailureMode == RedisFailureMode.Local ? new MemoryStore(options.LocalStore, _time) : null;
        var replicas = options.Replicas;
        _divide = limit => DivideLimit(limit, replicas);
        var meter = meterFactory?.Create(MeterName) ?? SharedMeter;
        _roundTrips = meter.CreateCounter<long>("floodgate.redis.round_trips", "{call}", "Scripts sent to Redis: one per identity per batch.");
        _localDecisions = meter.CreateCounter<long>("floodgate.redis.local_decisions", "{check}", "Checks answered without Redis, by source.");
        _failures = meter.CreateCounter<long>("floodgate.redis.failures", "{failure}", "Failed or timed-out Redis calls, by reason.");
        _fallbacks = meter.CreateCounter<long>("floodgate.redis.fallback_decisions", "{check}", "Checks answered by the failure mode, by mode.");
        _ = PreloadScriptAsync();
    }

    /// <summary>The connection.</summary>
    public IConnectionMultiplexer Connection => _connection;

    /// <summary>The options in force.</summary>
    public RedisStoreOptions Options => _options;

    /// <summary>How many scripts this store has sent to Redis (one per identity per batch).</summary>
    public long RoundTrips => Volatile.Read(ref _roundTripCount);

    /// <summary>How many checks this store answered without Redis, from the over-limit cache or a leased slice.</summary>
    public long LocalDecisions => Volatile.Read(ref _localDecisionCount);

    /// <summary>How many Redis calls failed or timed out, or were skipped by the open circuit breaker.</summary>
    public long Failures => Volatile.Read(ref _failureCount);

    /// <summary>Whether the circuit breaker lets calls through to Redis.</summary>
    public bool IsCircuitClosed => _breaker.IsClosed;

    internal long Mismatches => Volatile.Read(ref _mismatchCount);

    internal int CachedKeys => _cache?.Count ?? 0;

    /// <summary>Connects to Redis as <paramref name="options"/> say and creates a store that owns the connection.</summary>
    /// <remarks>
    /// The connection is made with <c>abortConnect=false</c>, so the store starts (answering by its failure mode) even
    /// while Redis is down, and with a fail-fast backlog, so a decision never queues behind a reconnect.
    /// </remarks>
    /// <exception cref="ArgumentException">An option is missing, out of range, or the configuration string is invalid.</exception>
    public static async Task<RedisStore> ConnectAsync(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisStore>? logger = null, IMeterFactory? meterFactory = null)
    {
        var configuration = Configure(options);
        var connection = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        return new RedisStore(connection, true, options, timeProvider, logger, meterFactory);
    }

    /// <summary>Connects synchronously; see <see cref="ConnectAsync"/>.</summary>
    /// <exception cref="ArgumentException">An option is missing, out of range, or the configuration string is invalid.</exception>
    public static RedisStore Connect(RedisStoreOptions options, TimeProvider? timeProvider = null, ILogger<RedisStore>? logger = null, IMeterFactory? meterFactory = null)
    {
        var configuration = Configure(options);
        var connection = ConnectionMultiplexer.Connect(configuration);
        return new RedisStore(connection, true, options, timeProvider, logger, meterFactory);
    }

    /// <inheritdoc/>
    public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Decide(checks, outcomes, null, true, Deadline(), cancellationToken);

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
            if (check.Limit.LeasedSlice > 0 && check.Cost > 0 && check.Limit.Algorithm != LimitAlgorithm.Concurrency
                && _slices.TryTake(check, now, out var left, mayAcquire: false) == LeaseSlices.Take.Local)
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
            if (_local is not null)
            {
                await _local.ReleaseAsync(check, leaseId, cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        var key = RedisKeys.For(_prefix, check.Key, LimitAlgorithm.Concurrency);
        try
        {
            var release = _connection.GetDatabase().SortedSetRemoveAsync(key, LeaseMember(leaseId, check.Cost));
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
            _connection.Dispose();
        }
    }

    /// <summary>Closes the connection when the store owns it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownsConnection)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Decides at an explicit server time, for tests that compare stores on one clock.</summary>
    internal ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, long now, CancellationToken cancellationToken = default) =>
        Decide(checks, outcomes, now, true, Deadline(), cancellationToken);

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
            LimitAlgorithm.Gcra => Limit.Gcra(rate, Math.Max(1, limit.Burst / replicas)),
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
    private async Task PreloadScriptAsync()
    {
        try
        {
            foreach (var endpoint in _connection.GetEndPoints())
            {
                var server = _connection.GetServer(endpoint);
                if (server.IsConnected && !server.IsReplica)
                {
                    await server.ScriptLoadAsync(Script).WaitAsync(TimeSpan.FromSeconds(5), TimeProvider.System).ConfigureAwait(false);
                }
            }
        }
        catch (Exception)
        {
            // Recovered on the first NOSCRIPT.
        }
    }

    private static ConfigurationOptions Configure(RedisStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ConfigurationOptions configuration;
        try
        {
            configuration = ConfigurationOptions.Parse(options.Configuration!);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException)
        {
            throw new ArgumentException($"The Redis configuration '{options.Configuration}' is invalid: {ex.Message}", nameof(options), ex);
        }

        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "floodgate";
        return configuration;
    }

    private static string LoadScript()
    {
        using var stream = typeof(RedisStore).Assembly.GetManifestResourceStream("Floodgate.Redis.decide.lua")
            ?? throw new InvalidOperationException("The embedded script Floodgate.Redis.decide.lua is missing from the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static long Micros(TimeSpan span) => span.Ticks / TimeSpan.TicksPerMicrosecond;

    private static RedisValue LeaseMember(long leaseId, long permits) =>
        string.Create(CultureInfo.InvariantCulture, $"{leaseId}:{permits}");

    private static bool IsCacheable(in RateLimitCheck check) => check.Cost > 0 && check.Limit.Algorithm != LimitAlgorithm.Concurrency;

    private static bool IsLeased(in RateLimitCheck check) =>
        check.Limit.LeasedSlice > 0 && check.Cost > 0 && check.Cost <= check.Limit.LeasedSlice && check.Limit.Algorithm != LimitAlgorithm.Concurrency;

    /// <summary>A check of an identity denied locally by a sibling: not evaluated, not committed.</summary>
    private static StoreOutcome Unevaluated(in RateLimitCheck check) =>
        new(new LimitOutcome(true, check.Limit.Amount, 0, 0), false, 0);

    private bool CacheDenies(in RateLimitCheck check, long now, out LimitOutcome outcome)
    {
        outcome = default;
        return _cache is not null && IsCacheable(check) && _cache.TryDeny(check, now, out outcome);
    }

    /// <summary>Decides a batch; <paramref name="deadline"/> (a <see cref="TimeProvider.System"/> timestamp) bounds every
    /// wait of the decision together, so a slow or failing Redis costs at most one timeout.</summary>
    private ValueTask Decide(ReadOnlyMemory<RateLimitCheck> checksMemory, Memory<StoreOutcome> outcomesMemory, long? serverNow, bool mayWait, long deadline, CancellationToken cancellationToken)
    {
        if (outcomesMemory.Length < checksMemory.Length)
        {
            throw new ArgumentException("There must be an outcome for every check.", nameof(outcomesMemory));
        }

        var checks = checksMemory.Span;
        var outcomes = outcomesMemory.Span;
        if (checks.Length == 0)
        {
            return default;
        }

        foreach (ref readonly var check in checks)
        {
            if (check.Cost < 0 || check.Limit is null)
            {
                throw new ArgumentException($"A check needs a limit and a cost of 0 or more, not {check.Cost}.", nameof(checksMemory));
            }
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
                return WaitForSlices(pending, checksMemory, outcomesMemory, serverNow, deadline, cancellationToken);
            }
        }

        var plan = new Kind[checks.Length];
        var done = new bool[checks.Length];
        List<Group>? groups = null;
        var breakerChecked = false;
        var breakerOpen = false;
        for (var i = 0; i < checks.Length; i++)
        {
            if (done[i])
            {
                continue;
            }

            var identity = checks[i].Key.Identity;
            var members = new List<int>(1);
            for (var j = i; j < checks.Length; j++)
            {
                if (!done[j] && checks[j].Key.Identity == identity)
                {
                    done[j] = true;
                    members.Add(j);
                }
            }

            // The over-limit cache: one cached denial of an enforced check denies the identity without Redis.
            var groupDenied = false;
            foreach (var k in members)
            {
                if (CacheDenies(checks[k], localNow, out var cached))
                {
                    plan[k] = Kind.Cached;
                    outcomes[k] = new StoreOutcome(cached, false, 0);
                    groupDenied |= !checks[k].IsShadow;
                }
            }

            if (groupDenied)
            {
                foreach (var k in members)
                {
                    if (plan[k] != Kind.Cached)
                    {
                        plan[k] = Kind.Unevaluated;
                        outcomes[k] = Unevaluated(checks[k]);
                    }
                }

                CountLocal(members.Count, "over_limit_cache");
                continue;
            }

            var remote = 0;
            foreach (var k in members)
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
                            remote++;
                            continue;
                    }
                }

                plan[k] = Kind.Remote;
                remote++;
            }

            if (remote == 0)
            {
                continue;
            }

            if (!breakerChecked)
            {
                breakerChecked = true;
                breakerOpen = !_breaker.TryEnter(LocalNow());
            }

            var group = new Group(members, remote);
            if (breakerOpen)
            {
                CountFailure("circuit_open");
                Fallback(group, checks, outcomes, plan);
                continue;
            }

            try
            {
                Send(group, checks, plan, serverNow, localNow, null);
            }
            catch (Exception ex)
            {
                // Nothing was sent: give back the slices this group took and answer it by the failure mode.
                Fallback(group, checks, outcomes, plan);
                Fail("error", ex);
                continue;
            }

            (groups ??= []).Add(group);
        }

        return groups is null ? default : Complete(checksMemory, outcomesMemory, plan, groups, serverNow, localNow, deadline, cancellationToken);
    }

    private async ValueTask WaitForSlices(List<Task> pending, ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, long? serverNow, long deadline, CancellationToken cancellationToken)
    {
        try
        {
            await Task.WhenAll(pending).WaitAsync(Remaining(deadline), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Decide without the slice: strictly in Redis.
        }

        // Only the time left: waiting for the slice and asking Redis share one timeout.
        await Decide(checks, outcomes, serverNow, false, deadline, cancellationToken).ConfigureAwait(false);
    }

    private void Send(Group group, ReadOnlySpan<RateLimitCheck> checks, Kind[] plan, long? serverNow, long localNow, long? calendarNow)
    {
        var keys = new RedisKey[group.RemoteCount];
        var values = new RedisValue[2 + (group.RemoteCount * Stride)];
        values[0] = serverNow is { } now ? now : RedisValue.EmptyString;
        values[1] = group.RemoteCount;
        group.Remote = new int[group.RemoteCount];
        group.LeaseIds = null;
        var n = 0;
        foreach (var k in group.Members)
        {
            if (plan[k] is not (Kind.Remote or Kind.Acquire))
            {
                continue;
            }

            ref readonly var check = ref checks[k];
            var limit = check.Limit;
            group.Remote[n] = k;
            keys[n] = RedisKeys.For(_prefix, check.Key, limit.Algorithm);
            var at = 2 + (n * Stride);
            values[at + 1] = check.Cost;
            values[at + 2] = check.IsShadow ? 1 : 0;
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
                        (p4, p5) = limit.CalendarPeriod(calendarNow ?? localNow);
                        p6 = limit.CalendarPeriod(p5).End;
                    }

                    break;
                default:
                    values[at] = 4;
                    var leaseId = RedisLeaseBit | (Random.Shared.NextInt64() & (RedisLeaseBit - 1));
                    (group.LeaseIds ??= new long[group.RemoteCount])[n] = leaseId;
                    values[at + 3] = limit.Amount;
                    values[at + 4] = limit.LeaseTimeoutMicroseconds;
                    values[at + 5] = LeaseMember(leaseId, check.Cost);
                    n++;
                    for (var f = 6; f < Stride; f++)
                    {
                        values[at + f] = 0;
                    }

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
        }

        Interlocked.Increment(ref _roundTripCount);
        _roundTrips.Add(1);
        group.Keys = keys;
        group.Values = values;
        group.Task = Evaluate(ScriptHash, keys, values);
    }

    private async ValueTask Complete(
        ReadOnlyMemory<RateLimitCheck> checks,
        Memory<StoreOutcome> outcomes,
        Kind[] plan,
        List<Group> groups,
        long? serverNow,
        long localNow,
        long deadline,
        CancellationToken cancellationToken)
    {
        try
        {
            await AwaitGroups(groups, deadline, cancellationToken).ConfigureAwait(false);

            // The server lost its scripts (SCRIPT FLUSH, a restart, a failover, a new cluster owner): send the script
            // itself for every such group at once (StackExchange.Redis sends EVAL and caches it), then wait for them
            // together in the time left.
            List<Group>? resent = null;
            foreach (var group in groups)
            {
                if (group.Task!.IsFaulted && group.Task.Exception?.InnerException is RedisServerException noScript
                    && noScript.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref _roundTripCount);
                    _roundTrips.Add(1);
                    group.Task = Evaluate(Script, group.Keys!, group.Values!);
                    (resent ??= []).Add(group);
                }
            }

            if (resent is not null)
            {
                await AwaitGroups(resent, deadline, cancellationToken).ConfigureAwait(false);
            }

            // A calendar period turned between this clock and the server's: resend every such group with the server's
            // periods, once, and wait for them together in the time left.
            resent = null;
            foreach (var group in groups)
            {
                if (group.Task!.IsCompletedSuccessfully && IsCalendarSkew(group.Task.Result) && !group.Resent)
                {
                    group.Resent = true;
                    try
                    {
                        Send(group, checks.Span, plan, serverNow, localNow, (long)group.Task.Result[1]);
                    }
                    catch (Exception ex)
                    {
                        group.Task = Task.FromException<RedisResult>(ex);
                    }

                    (resent ??= []).Add(group);
                }
            }

            if (resent is not null)
            {
                await AwaitGroups(resent, deadline, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up: give back what the groups took locally.
            foreach (var group in groups)
            {
                Abandon(group, checks.Span, plan);
            }

            throw;
        }

        Exception? failure = null;
        var timedOut = false;
        var failed = false;
        foreach (var group in groups)
        {
            var task = group.Task!;
            if (task.IsCompletedSuccessfully)
            {
                if (Apply(group, task.Result, checks.Span, outcomes.Span, plan, localNow))
                {
                    continue;
                }

                failure ??= new RedisException("The decision script answered in an unexpected shape.");
            }
            else if (!task.IsCompleted)
            {
                Observe(task);
                timedOut = true;
                failure ??= new TimeoutException($"Redis did not answer within {_options.Timeout}.");
            }
            else
            {
                failure ??= task.Exception?.InnerException ?? new TaskCanceledException(task);
            }

            failed = true;
            Fallback(group, checks.Span, outcomes.Span, plan);
        }

        if (failed)
        {
            Fail(timedOut ? "timeout" : "error", failure);
        }
        else
        {
            _breaker.OnSuccess();
        }
    }

    /// <summary>Waits for the groups' calls until the deadline; a failure or a timeout is read from each group's task.</summary>
    private static async Task AwaitGroups(List<Group> groups, long deadline, CancellationToken cancellationToken)
    {
        var all = groups.Count == 1 ? groups[0].Task! : Task.WhenAll(groups.Select(static g => (Task)g.Task!));
        try
        {
            await all.WaitAsync(Remaining(deadline), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Each group is answered by its own task's state.
        }
        finally
        {
            if (!all.IsCompleted)
            {
                Observe(all);
            }
        }
    }

    private static void Observe(Task task) =>
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private long Deadline() => TimeProvider.System.GetTimestamp() + (long)(_options.Timeout.TotalSeconds * TimeProvider.System.TimestampFrequency);

    private static TimeSpan Remaining(long deadline)
    {
        var left = TimeProvider.System.GetElapsedTime(TimeProvider.System.GetTimestamp(), deadline);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    private Task<RedisResult> Evaluate(byte[] hash, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return _connection.GetDatabase().ScriptEvaluateAsync(hash, keys, values);
        }
        catch (Exception ex)
        {
            // RedisCommandException (a disabled command, a cross-slot batch, a primary-only command to a replica) and
            // every other synchronous failure becomes a failed call, answered by the failure mode.
            return Task.FromException<RedisResult>(ex);
        }
    }

    private Task<RedisResult> Evaluate(string script, RedisKey[] keys, RedisValue[] values)
    {
        try
        {
            return _connection.GetDatabase().ScriptEvaluateAsync(script, keys, values);
        }
        catch (Exception ex)
        {
            // RedisCommandException (a disabled command, a cross-slot batch, a primary-only command to a replica) and
            // every other synchronous failure becomes a failed call, answered by the failure mode.
            return Task.FromException<RedisResult>(ex);
        }
    }

    private static bool IsCalendarSkew(RedisResult result) =>
        result.Resp2Type == ResultType.Array && result.Length >= 2 && result[0].Resp2Type == ResultType.Integer
        && result[1].Resp2Type == ResultType.Integer && (long)result[0] == -1;

    /// <summary>Turns a script's answer into outcomes; <see langword="false"/> when the answer has the wrong shape.</summary>
    private bool Apply(Group group, RedisResult result, ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes, Kind[] plan, long localNow)
    {
        var remote = group.Remote!;
        if (result.Resp2Type != ResultType.Array || result.Length != 2 + (5 * remote.Length))
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

        if ((long)result[0] != 1)
        {
            return false;
        }

        var now = (long)result[1];
        var denied = false;
        for (var n = 0; n < remote.Length; n++)
        {
            denied |= (long)result[2 + (5 * n)] == 0 && !checks[remote[n]].IsShadow;
        }

        for (var n = 0; n < remote.Length; n++)
        {
            var k = remote[n];
            ref readonly var check = ref checks[k];
            var at = 2 + (5 * n);
            var allowed = (long)result[at] == 1;
            var state = new LimitState((long)result[at + 1], (long)result[at + 2], (long)result[at + 3]);
            var granted = (long)result[at + 4];
            var committed = allowed && !denied;
            LimitOutcome outcome;
            var leaseId = 0L;
            if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                outcome = LimitMath.Concurrency(check.Limit, state.A, state.B, state.C, now, check.Cost);
                if (committed && check.Cost > 0)
                {
                    leaseId = group.LeaseIds![n];
                }
            }
            else
            {
                var sliced = committed && granted > check.Cost;
                outcome = LimitMath.Decide(check.Limit, state, now, sliced ? granted : check.Cost, out _);
                if (plan[k] == Kind.Acquire)
                {
                    var left = _slices.Acquired(check, committed ? granted : 0, localNow);
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
                _cache.Observe(check, state, now, localNow, outcome, committed);
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

        return true;
    }

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

    /// <summary>Answers a whole group by the failure mode.</summary>
    private void Fallback(Group group, ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes, Kind[] plan)
    {
        Abandon(group, checks, plan);
        var members = group.Members;
        var mode = _options.FailureMode;
        _fallbacks.Add(members.Count, new KeyValuePair<string, object?>("mode", mode switch
        {
            RedisFailureMode.Open => "open",
            RedisFailureMode.Closed => "closed",
            _ => "local",
        }));
        if (mode == RedisFailureMode.Local)
        {
            var local = new RateLimitCheck[members.Count];
            var answers = new StoreOutcome[members.Count];
            for (var m = 0; m < members.Count; m++)
            {
                var check = checks[members[m]];
                local[m] = check with { Limit = _localLimits.GetValue(check.Limit, _divide) };
            }

            _local!.Decide(local, answers);
            for (var m = 0; m < members.Count; m++)
            {
                outcomes[members[m]] = answers[m] with { IsStoreFailure = true };
            }

            return;
        }

        var retry = Math.Max(_breaker.RetryAfter(LocalNow()), ClosedRetryMicroseconds);
        foreach (var k in members)
        {
            var limit = checks[k].Limit;
            outcomes[k] = mode == RedisFailureMode.Open
                ? new StoreOutcome(new LimitOutcome(true, limit.Amount, 0, 0), false, 0, true)
                : new StoreOutcome(new LimitOutcome(false, 0, 0, retry), false, 0, true);
        }
    }

    private void Fail(string reason, Exception? exception)
    {
        CountFailure(reason);
        var opened = _breaker.OnFailure(LocalNow());
        var now = LocalNow();
        var last = Volatile.Read(ref _lastLog);
        if (!opened && now - last < LogIntervalMicroseconds)
        {
            Interlocked.Increment(ref _suppressedLogs);
            return;
        }

        if (Interlocked.CompareExchange(ref _lastLog, now, last) != last && !opened)
        {
            Interlocked.Increment(ref _suppressedLogs);
            return;
        }

        var suppressed = Interlocked.Exchange(ref _suppressedLogs, 0);
        var mode = _options.FailureMode.ToString().ToLowerInvariant();
        if (opened)
        {
            LogBreakerOpened(_logger, reason, mode, _options.BreakerDuration, suppressed, exception);
        }
        else
        {
            LogFailure(_logger, reason, mode, suppressed, exception);
        }
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

    [LoggerMessage(1, LogLevel.Warning, "Redis {Reason}: answering by on_failure={Mode} ({Suppressed} earlier failures not logged)")]
    private static partial void LogFailure(ILogger logger, string reason, string mode, long suppressed, Exception? exception);

    [LoggerMessage(2, LogLevel.Warning, "Redis {Reason}: circuit breaker open, answering by on_failure={Mode} for {Duration} before probing ({Suppressed} earlier failures not logged)")]
    private static partial void LogBreakerOpened(ILogger logger, string reason, string mode, TimeSpan duration, long suppressed, Exception? exception);

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

    private sealed class Group(List<int> members, int remoteCount)
    {
        public List<int> Members { get; } = members;

        public int RemoteCount { get; } = remoteCount;

        public int[]? Remote { get; set; }

        public long[]? LeaseIds { get; set; }

        public Task<RedisResult>? Task { get; set; }

        public RedisKey[]? Keys { get; set; }

        public RedisValue[]? Values { get; set; }

        public bool Resent { get; set; }
    }
}
