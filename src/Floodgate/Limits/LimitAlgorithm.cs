namespace Floodgate.Limits;

/// <summary>How a limit counts requests.</summary>
public enum LimitAlgorithm
{
    /// <summary>
    /// The generic cell rate algorithm, a token bucket kept as one timestamp per key. The default: smooth,
    /// exact, and the cheapest state.
    /// </summary>
    Gcra,

    /// <summary>The weighted two-window counter: the previous window's count decays linearly.</summary>
    SlidingWindow,

    /// <summary>A counter per window aligned to the Unix epoch, as in Envoy's reference rate limit service.</summary>
    FixedWindow,

    /// <summary>A long-period counter on calendar boundaries in a time zone, or rolling from the first request.</summary>
    Quota,

    /// <summary>In-flight requests held as leases that expire after a lease timeout.</summary>
    Concurrency,

    /// <summary>
    /// The sliding log: one timestamp per unit admitted, so at most the amount in any window of the period, exactly.
    /// Bounded: the amount may not exceed <see cref="Limit.MaxSlidingLogAmount"/>.
    /// </summary>
    SlidingLog,

    /// <summary>
    /// The leaky bucket as a meter: a bucket of <see cref="Limit.Burst"/> units that leaks at the rate; what does not fit
    /// is rejected. It admits exactly what <see cref="Gcra"/> admits for the same rate and burst (gcra keeps the same
    /// bucket as the moment it will be empty), under keys of its own.
    /// </summary>
    LeakyBucket,
}
