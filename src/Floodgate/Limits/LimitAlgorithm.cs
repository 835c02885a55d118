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
}
