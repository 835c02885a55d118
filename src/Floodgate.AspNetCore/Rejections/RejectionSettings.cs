using Floodgate.Engine;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Rejections;

/// <summary>How rejections are answered: the status code per tier and the application's callback.</summary>
internal sealed class RejectionSettings(IReadOnlyDictionary<RateLimitTier, int> statusCodes, Func<FloodgateRejectedContext, CancellationToken, ValueTask>? onRejected)
{
    /// <summary>Floodgate's own answers: 429 or 503, with Floodgate's problem details.</summary>
    public static RejectionSettings Default { get; } = new(new Dictionary<RateLimitTier, int>(), null);

    /// <summary>The application's callback, which writes the body; <see langword="null"/> for problem details.</summary>
    public Func<FloodgateRejectedContext, CancellationToken, ValueTask>? OnRejected { get; } = onRejected;

    /// <summary>The settings of <paramref name="options"/>, the status codes copied so that later changes to the options do not leak in.</summary>
    public static RejectionSettings Of(FloodgateOptions options) =>
        options.RejectionStatusCodes.Count == 0 && options.OnRejected is null
            ? Default
            : new(new Dictionary<RateLimitTier, int>(options.RejectionStatusCodes), options.OnRejected);

    /// <summary>The status code of a rejection by <paramref name="tier"/>: the one configured, else 429 or 503.</summary>
    public int StatusOf(RateLimitTier tier, bool isCapacity, bool isStoreFailure)
    {
        if (isStoreFailure)
        {
            return StatusCodes.Status503ServiceUnavailable;
        }

        return statusCodes.TryGetValue(tier, out var status) ? status
            : isCapacity ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status429TooManyRequests;
    }

    /// <summary>The status code of <paramref name="result"/>'s rejection.</summary>
    public int StatusOf(in RateLimitResult result) =>
        StatusOf(result.Decision.Tier, result.IsCapacityRejection, result.Decision.IsStoreFailure);
}
