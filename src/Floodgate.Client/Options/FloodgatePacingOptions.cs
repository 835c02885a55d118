namespace Floodgate.Client;

/// <summary>
/// How a client paces itself from the limit fields and answers a rejection. Configured per client by
/// <c>AddFloodgatePacing</c>; validated when the host starts.
/// </summary>
public sealed class FloodgatePacingOptions
{
    /// <summary>
    /// The longest a request may spend waiting in all (for its slot, a permit, and retries), counted from when it enters
    /// the handler. A wait that would end later is not started: a paced request then fails with an
    /// <see cref="HttpRequestException"/> whose <see cref="HttpRequestException.StatusCode"/> is 429, and a rejection is
    /// returned as it is. Default 60 s; <see cref="Timeout.InfiniteTimeSpan"/> for none (the caller's cancellation still ends it).
    /// </summary>
    public TimeSpan Deadline { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The longest single wait before a retry. A rejection whose Retry-After is longer is returned at once rather than
    /// waited for. Default 30 s.
    /// </summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The base of the exponential backoff (base × 2^attempt) whose full jitter, a uniformly random share, is added to
    /// Retry-After; and the whole wait, jittered, when a rejection says nothing of when to retry. Default 1 s.
    /// </summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How many times a rejected request is sent again (0: never). Default 3.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>
    /// Whether requests whose method is not idempotent (POST, PATCH, CONNECT) are retried after a 429 or 503 too.
    /// Default false; a request can decide for itself with <see cref="FloodgateRequestOptions.RetryRejections"/>.
    /// </summary>
    public bool RetryNonIdempotent { get; set; }
}
