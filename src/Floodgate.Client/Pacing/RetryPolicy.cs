using Floodgate.Client.Fields;

namespace Floodgate.Client.Pacing;

/// <summary>When a rejected request may be sent again, and after how long.</summary>
internal static class RetryPolicy
{
    /// <summary>Whether <paramref name="request"/> may be sent again after a rejection.</summary>
    public static bool MayRetry(HttpRequestMessage request, FloodgatePacingOptions options)
    {
        if (request.Options.TryGetValue(FloodgateRequestOptions.RetryRejections, out var retry))
        {
            return retry;
        }

        return options.RetryNonIdempotent || IsIdempotent(request.Method);
    }

    /// <summary>RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT and DELETE.</summary>
    public static bool IsIdempotent(HttpMethod method) =>
        method == HttpMethod.Get || method == HttpMethod.Head || method == HttpMethod.Options || method == HttpMethod.Trace
        || method == HttpMethod.Put || method == HttpMethod.Delete;

    /// <summary>
    /// When the server says the request may be tried again: Retry-After (seconds or a date), else <c>t</c> (or
    /// <c>X-RateLimit-Reset</c>) when nothing remains; <see langword="null"/> when it says nothing.
    /// </summary>
    public static TimeSpan? ServerDelay(HttpResponseMessage response, in LimitSignal signal, DateTimeOffset now)
    {
        var retryAfter = response.Headers.RetryAfter;
        if (retryAfter?.Delta is { } delta)
        {
            return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        }

        if (retryAfter?.Date is { } date)
        {
            var left = date - now;
            return left < TimeSpan.Zero ? TimeSpan.Zero : left;
        }

        if (signal.Kind != SignalKind.None && signal.Remaining == 0 && signal.Reset >= 0)
        {
            return TimeSpan.FromSeconds(signal.Reset);
        }

        return null;
    }

    /// <summary>
    /// The wait before retry number <paramref name="attempt"/> (0 for the first), or <see langword="null"/> when the
    /// server asks for longer than <see cref="FloodgatePacingOptions.MaxRetryDelay"/>. With a server delay d it is d
    /// plus full jitter: a uniformly random share of min(base × 2^attempt, the cap − d), so that callers refused together
    /// do not come back together; without one it is the classic full jitter, uniform in [0, min(cap, base × 2^attempt)].
    /// </summary>
    /// <param name="serverDelay">What the server asked for.</param>
    /// <param name="attempt">How many retries were made before this one.</param>
    /// <param name="options">The cap and the base.</param>
    /// <param name="uniform">A uniform sample in [0, 1).</param>
    public static TimeSpan? Delay(TimeSpan? serverDelay, int attempt, FloodgatePacingOptions options, double uniform)
    {
        var cap = options.MaxRetryDelay;
        var backoff = options.RetryBaseDelay * Math.Pow(2, Math.Min(attempt, 30));
        if (backoff > cap)
        {
            backoff = cap;
        }

        if (serverDelay is not { } floor)
        {
            return backoff * uniform;
        }

        if (floor > cap)
        {
            return null;
        }

        var spread = cap - floor < backoff ? cap - floor : backoff;
        return floor + (spread * uniform);
    }
}
