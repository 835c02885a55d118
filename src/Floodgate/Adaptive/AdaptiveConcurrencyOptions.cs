using System.Globalization;

namespace Floodgate.Adaptive;

/// <summary>How an adaptive concurrency limit is learned.</summary>
public enum AdaptiveAlgorithm
{
    /// <summary>
    /// The gradient of latency (as Envoy's adaptive_concurrency and Netflix's Gradient2): the limit is moved by the ratio of
    /// the minimum round-trip time, with a buffer, to the sampled latency of each window.
    /// </summary>
    Gradient,

    /// <summary>Additive increase, multiplicative decrease on errors (5xx answers, upstream timeouts).</summary>
    Aimd,
}

/// <summary>Whether a learned limit is only computed and exported, or also enforced.</summary>
public enum AdaptiveMode
{
    /// <summary>The limit is learned and exported (metric, log, dashboard); no request is refused by it.</summary>
    Shadow,

    /// <summary>Requests beyond the learned limit are refused (503 with <c>Retry-After</c>).</summary>
    Enforce,
}

/// <summary>
/// The settings of one adaptive concurrency limit (<see cref="AdaptiveConcurrencyLimiter"/>). Immutable and compared by
/// value: a reload that leaves them unchanged keeps the limit learned so far.
/// </summary>
public sealed record AdaptiveConcurrencyOptions
{
    /// <summary>The most a limit can be set to.</summary>
    public const int MaxAllowedLimit = 1_000_000;

    /// <summary>The algorithm. Default <see cref="AdaptiveAlgorithm.Gradient"/>.</summary>
    public AdaptiveAlgorithm Algorithm { get; init; } = AdaptiveAlgorithm.Gradient;

    /// <summary>Shadow (the default: learned and exported, never enforced) or enforce.</summary>
    public AdaptiveMode Mode { get; init; } = AdaptiveMode.Shadow;

    /// <summary>The lowest the limit goes, and what it is pinned to while the minimum round-trip time is measured. Default 3.</summary>
    public int MinLimit { get; init; } = 3;

    /// <summary>The highest the limit goes. Default 1000.</summary>
    public int MaxLimit { get; init; } = 1000;

    /// <summary>The limit before anything is learned. Default 20.</summary>
    public int InitialLimit { get; init; } = 20;

    /// <summary>How long each window of latency samples lasts before the limit is moved. Default 100 ms.</summary>
    public TimeSpan SampleWindow { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Which percentile of a window's latencies is its latency, from 0.5 to 1. Default 0.9 (p90).</summary>
    public double SamplePercentile { get; init; } = 0.9;

    /// <summary>How often the minimum round-trip time is measured again (plus up to <see cref="MinRttJitter"/> of it). Default 60 s.</summary>
    public TimeSpan MinRttInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How many requests that ran at the pinned limit measure the minimum round-trip time. Default 25.</summary>
    public int MinRttSamples { get; init; } = 25;

    /// <summary>The random share of <see cref="MinRttInterval"/> added to each wait, so replicas do not all measure at once. Default 0.15.</summary>
    public double MinRttJitter { get; init; } = 0.15;

    /// <summary>
    /// How much slower than the minimum round-trip time the latency may be before the limit goes down (0.25: 25 %).
    /// Default 0.25.
    /// </summary>
    public double Buffer { get; init; } = 0.25;

    /// <summary>The weight of each new value of the limit, from 0 (exclusive) to 1 (no smoothing). Default 0.5.</summary>
    public double Smoothing { get; init; } = 0.5;

    /// <summary>What an AIMD limit is multiplied by after a window with errors, from 0.5 to 1 (exclusive). Default 0.9.</summary>
    public double BackoffRatio { get; init; } = 0.9;

    /// <summary>A latency beyond which a request counts as an error (a timeout) for AIMD; <see langword="null"/> for none.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">A setting is out of range; the message names it and says why.</exception>
    public void Validate()
    {
        Require(Enum.IsDefined(Algorithm), "algorithm must be gradient or aimd.");
        Require(Enum.IsDefined(Mode), "mode must be shadow or enforce.");
        Require(MinLimit is >= 1 and <= MaxAllowedLimit, $"min_limit must be from 1 to {MaxAllowedLimit}.");
        Require(MaxLimit is >= 1 and <= MaxAllowedLimit, $"max_limit must be from 1 to {MaxAllowedLimit}.");
        Require(MinLimit <= MaxLimit, $"min_limit ({MinLimit}) must not exceed max_limit ({MaxLimit}).");
        Require(InitialLimit >= MinLimit && InitialLimit <= MaxLimit, $"initial_limit ({InitialLimit}) must be from min_limit ({MinLimit}) to max_limit ({MaxLimit}).");
        Require(SampleWindow >= TimeSpan.FromMilliseconds(1) && SampleWindow <= TimeSpan.FromMinutes(1), "sample_window must be from 1 ms to 1 min.");
        Require(SamplePercentile is >= 0.5 and <= 1, "sample_percentile must be from 0.5 to 1.");
        Require(MinRttInterval >= SampleWindow && MinRttInterval <= TimeSpan.FromDays(1), "min_rtt_interval must be at least sample_window and at most a day.");
        Require(MinRttSamples is >= 1 and <= AdaptiveConcurrencyLimiter.SampleCapacity, $"min_rtt_samples must be from 1 to {AdaptiveConcurrencyLimiter.SampleCapacity}.");
        Require(MinRttJitter is >= 0 and <= 1, "min_rtt_jitter must be from 0 to 1.");
        Require(Buffer is >= 0 and <= 10, "buffer must be from 0 to 10 (a share of the minimum round-trip time, 0.25 for 25 %).");
        Require(Smoothing is > 0 and <= 1, "smoothing must be above 0 and at most 1 (1: no smoothing).");
        Require(BackoffRatio is >= 0.5 and < 1, "backoff_ratio must be from 0.5 to below 1.");
        Require(Timeout is null || Timeout > TimeSpan.Zero, "timeout must be positive.");
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Algorithm.ToString().ToLowerInvariant()} {Mode.ToString().ToLowerInvariant()} [{MinLimit}..{MaxLimit}] from {InitialLimit}");

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException($"Adaptive concurrency: {message}");
        }
    }
}
