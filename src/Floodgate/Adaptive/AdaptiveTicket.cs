namespace Floodgate.Adaptive;

/// <summary>
/// A request admitted by an <see cref="AdaptiveConcurrencyLimiter"/>: when it started and how many were in flight with
/// it. Handed back to <see cref="AdaptiveConcurrencyLimiter.Complete"/> when the request ends.
/// </summary>
/// <param name="Started">The limiter's timestamp (<see cref="TimeProvider.GetTimestamp"/>) when it was admitted.</param>
/// <param name="InFlight">How many requests were in flight, this one included, when it was admitted.</param>
public readonly record struct AdaptiveTicket(long Started, int InFlight);

/// <summary>How a request admitted by an adaptive limit ended.</summary>
public enum AdaptiveOutcome
{
    /// <summary>Answered: its latency is a sample.</summary>
    Success,

    /// <summary>Failed upstream (a 5xx, a timeout, an exception): its latency is a sample, and AIMD backs off.</summary>
    Error,

    /// <summary>Ended without telling anything of the upstream (the client went away): it leaves, no sample is taken.</summary>
    Ignored,
}

/// <summary>What an adaptive limit has learned, as the dashboard and the admin API show it.</summary>
/// <param name="Rule">The rule that declares it.</param>
/// <param name="Algorithm">gradient or aimd.</param>
/// <param name="Mode">shadow or enforce.</param>
/// <param name="Limit">The learned limit.</param>
/// <param name="EffectiveLimit">The limit applied now: the learned one, or the minimum while the minimum round-trip time is measured.</param>
/// <param name="InFlight">Requests in flight now.</param>
/// <param name="MinRttMilliseconds">The minimum round-trip time measured last; <see langword="null"/> before the first measurement.</param>
/// <param name="SampleRttMilliseconds">The latency (the percentile) of the last window; <see langword="null"/> before the first.</param>
/// <param name="MeasuringMinRtt">Whether the minimum round-trip time is being measured now.</param>
/// <param name="Changes">How many times the learned limit has changed.</param>
/// <param name="Rejected">Requests refused by the limit (enforce), or that would have been (shadow).</param>
public sealed record AdaptiveSnapshot(
    string Rule,
    string Algorithm,
    string Mode,
    int Limit,
    int EffectiveLimit,
    int InFlight,
    double? MinRttMilliseconds,
    double? SampleRttMilliseconds,
    bool MeasuringMinRtt,
    long Changes,
    long Rejected);
