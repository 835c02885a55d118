namespace Floodgate.Costs;

/// <summary>
/// What one request used, as its upstream reported it (a usage object, a header or trailer) or as the endpoint reported
/// it from code: each rule with a <see cref="RuleCost"/> charges its measure of it when the request is settled.
/// </summary>
/// <remarks>
/// Mutable and owned by one request: the front door fills it while the response goes by, later figures replacing
/// earlier ones field by field (an event stream may report input tokens in its first event and output tokens in its last).
/// Not thread-safe.
/// </remarks>
public sealed class CostReport
{
    /// <summary>Input (prompt) tokens; <see langword="null"/> when not reported.</summary>
    public long? InputTokens { get; set; }

    /// <summary>Output (completion) tokens; <see langword="null"/> when not reported.</summary>
    public long? OutputTokens { get; set; }

    /// <summary>All tokens, when reported as such; <see langword="null"/> when not reported.</summary>
    public long? TotalTokens { get; set; }

    /// <summary>A cost in the rule's own units, reported by a header or trailer or from code; <see langword="null"/> when not.</summary>
    public long? Units { get; set; }

    /// <summary>The model that served the request, to price its tokens by; <see langword="null"/> when not known.</summary>
    public string? Model { get; set; }

    /// <summary>The response's status code, once it is known; <see langword="null"/> before, or when no response was written.</summary>
    public int? StatusCode { get; set; }

    /// <summary>Whether any figure was reported.</summary>
    public bool HasUsage => InputTokens is not null || OutputTokens is not null || TotalTokens is not null || Units is not null;

    /// <summary>All tokens: the total reported, else input plus output; <see langword="null"/> when neither was reported.</summary>
    public long? AllTokens => TotalTokens ?? (InputTokens is null && OutputTokens is null ? null : Sum(InputTokens ?? 0, OutputTokens ?? 0));

    private static long Sum(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;
}
