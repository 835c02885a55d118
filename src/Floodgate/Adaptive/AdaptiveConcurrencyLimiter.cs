using Floodgate.Logging;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Floodgate.Adaptive;

/// <summary>
/// A concurrency limit learned from latency, for one rule on one replica (latency is local: docs/adaptive-concurrency.md).
/// Pure: no thread or timer of its own, driven by the <see cref="TimeProvider"/> and the samples it is given when requests
/// end. <see cref="TryAcquire"/> is one interlocked increment; <see cref="Complete"/> takes a small lock to add a sample,
/// and at the end of a window moves the limit. Neither allocates.
/// </summary>
/// <remarks>
/// <para>
/// Gradient (Envoy's adaptive_concurrency, Netflix's Gradient2): the minimum round-trip time is measured with the limit
/// pinned at <see cref="AdaptiveConcurrencyOptions.MinLimit"/> (the percentile of <see cref="AdaptiveConcurrencyOptions.MinRttSamples"/>
/// requests that ran with at most that many in flight), again every <see cref="AdaptiveConcurrencyOptions.MinRttInterval"/>
/// plus jitter. Between measurements, each <see cref="AdaptiveConcurrencyOptions.SampleWindow"/> the limit moves toward
/// <c>gradient × limit + √(gradient × limit)</c>, where <c>gradient = minRtt × (1 + buffer) / sampleRtt</c> clamped to
/// [0.5, 2], by <see cref="AdaptiveConcurrencyOptions.Smoothing"/>, within the bounds. It does not grow while less than
/// half of it is used (an idle limit says nothing of the capacity).
/// </para>
/// <para>
/// In shadow mode nothing holds the concurrency down, so the gradient is applied to the concurrency observed in the window
/// rather than to the limit: when the upstream is saturated both reach the same value, the concurrency at which latency
/// stays within the buffer of the minimum.
/// </para>
/// </remarks>
public sealed partial class AdaptiveConcurrencyLimiter
{
    /// <summary>How many samples a window holds; beyond that the oldest are overwritten.</summary>
    public const int SampleCapacity = 1024;

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LogBudget _logBudget;
    private readonly long[] _samples = new long[SampleCapacity];
    private readonly long[] _sorted = new long[SampleCapacity];
    private readonly long _windowTicks;
    private readonly long _minRttTimeoutTicks;
    private readonly bool _enforce;
    private ulong _random;

    private int _inFlight;
    private int _effectiveLimit;
    private long _rejected;

    // Guarded by _lock.
    private double _limit;
    private int _count;
    private long _windowStart;
    private int _errors;
    private int _peakInFlight;
    private long _inFlightSum;
    private bool _measuring = true;
    private long _minRttFallback = long.MaxValue;
    private long _nextMinRttAt;
    private long _minRtt = -1;
    private long _sampleRtt = -1;
    private long _changes;

    /// <summary>Creates the limit of <paramref name="rule"/>, which first measures the minimum round-trip time.</summary>
    /// <param name="rule">The rule's name, for logs and metrics.</param>
    /// <param name="options">The settings; validated.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">Where a change of the limit is logged (within a budget of lines); none by default.</param>
    /// <param name="seed">The seed of the jitter; random by default, so replicas do not measure together.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public AdaptiveConcurrencyLimiter(string rule, AdaptiveConcurrencyOptions options, TimeProvider time, ILogger? logger = null, ulong? seed = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(rule);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        options.Validate();
        Rule = rule;
        Options = options;
        _time = time;
        _logger = logger ?? NullLogger.Instance;
        _logBudget = new LogBudget(time);
        _enforce = options.Mode == AdaptiveMode.Enforce;
        _random = seed ?? (ulong)Random.Shared.NextInt64() | 1;
        _windowTicks = ToTicks(options.SampleWindow);
        _minRttTimeoutTicks = Math.Max(ToTicks(TimeSpan.FromSeconds(1)), 10 * _windowTicks);
        _limit = options.InitialLimit;
        _effectiveLimit = options.MinLimit;
        _windowStart = time.GetTimestamp();
    }

    /// <summary>The rule that declares the limit.</summary>
    public string Rule { get; }

    /// <summary>The settings.</summary>
    public AdaptiveConcurrencyOptions Options { get; }

    /// <summary>The learned limit.</summary>
    public int Limit
    {
        get
        {
            lock (_lock)
            {
                return LearnedLimit();
            }
        }
    }

    /// <summary>The limit applied now: the learned one, or the minimum while the minimum round-trip time is measured.</summary>
    public int EffectiveLimit => Volatile.Read(ref _effectiveLimit);

    /// <summary>Requests in flight.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Requests refused (enforce), or that would have been (shadow).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>The minimum round-trip time measured last; <see langword="null"/> before the first measurement ends.</summary>
    public TimeSpan? MinRtt
    {
        get
        {
            lock (_lock)
            {
                return _minRtt < 0 ? null : ToTimeSpan(_minRtt);
            }
        }
    }

    /// <summary>
    /// Admits a request when fewer than <see cref="EffectiveLimit"/> are in flight; in shadow mode always admits it,
    /// counting in <see cref="Rejected"/> the requests that enforcing would have refused.
    /// </summary>
    /// <param name="ticket">The admitted request, for <see cref="Complete"/>.</param>
    /// <returns>Whether it may go on; when it may, <see cref="Complete"/> must be called once when it ends.</returns>
    public bool TryAcquire(out AdaptiveTicket ticket)
    {
        var inFlight = Interlocked.Increment(ref _inFlight);
        if (inFlight > Volatile.Read(ref _effectiveLimit))
        {
            Interlocked.Increment(ref _rejected);
            if (_enforce)
            {
                Interlocked.Decrement(ref _inFlight);
                ticket = default;
                return false;
            }
        }

        ticket = new AdaptiveTicket(_time.GetTimestamp(), inFlight);
        return true;
    }

    /// <summary>Ends an admitted request, taking its latency as a sample unless <paramref name="outcome"/> is ignored.</summary>
    /// <param name="ticket">What <see cref="TryAcquire"/> gave.</param>
    /// <param name="outcome">How it ended.</param>
    public void Complete(in AdaptiveTicket ticket, AdaptiveOutcome outcome)
    {
        Interlocked.Decrement(ref _inFlight);
        if (outcome == AdaptiveOutcome.Ignored)
        {
            return;
        }

        var now = _time.GetTimestamp();
        var latency = Math.Max(0, now - ticket.Started);
        if (Options.Timeout is { } timeout && latency > ToTicks(timeout))
        {
            outcome = AdaptiveOutcome.Error;
        }

        Change change;
        lock (_lock)
        {
            change = _measuring ? SampleMinRtt(now, latency, ticket.InFlight) : Sample(now, latency, ticket.InFlight, outcome == AdaptiveOutcome.Error);
        }

        if (change.From != change.To)
        {
            LogChange(change);
        }
    }

    /// <summary>What the limit has learned.</summary>
    public AdaptiveSnapshot Snapshot()
    {
        lock (_lock)
        {
            return new AdaptiveSnapshot(
                Rule,
                Options.Algorithm == AdaptiveAlgorithm.Gradient ? "gradient" : "aimd",
                _enforce ? "enforce" : "shadow",
                LearnedLimit(),
                EffectiveLimit,
                InFlight,
                _minRtt < 0 ? null : ToTimeSpan(_minRtt).TotalMilliseconds,
                _sampleRtt < 0 ? null : ToTimeSpan(_sampleRtt).TotalMilliseconds,
                _measuring,
                _changes,
                Rejected);
        }
    }

    private int LearnedLimit() => (int)Math.Clamp(Math.Floor(_limit), Options.MinLimit, Options.MaxLimit);

    private long ToTicks(TimeSpan span) => (long)(span.Ticks * (double)_time.TimestampFrequency / TimeSpan.TicksPerSecond);

    private TimeSpan ToTimeSpan(long ticks) => TimeSpan.FromTicks((long)(ticks * (double)TimeSpan.TicksPerSecond / _time.TimestampFrequency));

    /// <summary>A change of the learned limit, logged outside the lock.</summary>
    private readonly record struct Change(int From, int To, long MinRtt, long SampleRtt);
}
