namespace Floodgate.Client;

/// <summary>Per-request settings of the pacing handler, set with <c>request.Options.Set(...)</c>.</summary>
public static class FloodgateRequestOptions
{
    /// <summary>
    /// Whether this request is sent again after a 429 or 503, whatever its method: true for a POST the server
    /// deduplicates (an idempotency key), false for a GET that must not be repeated. Unset: idempotent methods are
    /// retried, others as <see cref="FloodgatePacingOptions.RetryNonIdempotent"/> says.
    /// </summary>
    public static readonly HttpRequestOptionsKey<bool> RetryRejections = new("Floodgate.RetryRejections");
}
