using Floodgate.Engine;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Rejections;

/// <summary>
/// A request Floodgate rejected, as <see cref="FloodgateOptions.OnRejected"/> sees it: the status code, <c>Retry-After</c>
/// and limit headers are already set on <see cref="HttpContext"/>'s response, and the body is the callback's to write.
/// </summary>
public sealed class FloodgateRejectedContext
{
    internal FloodgateRejectedContext(HttpContext httpContext, in RateLimitDecision decision, RateLimitTier tier, string rule, TimeSpan? retryAfter, string detail, bool isBan)
    {
        HttpContext = httpContext;
        Decision = decision;
        Tier = tier;
        Rule = rule;
        RetryAfter = retryAfter;
        Detail = detail;
        IsBan = isBan;
    }

    /// <summary>The request.</summary>
    public HttpContext HttpContext { get; }

    /// <summary>
    /// The decision that rejected the request: rule, limit, remaining, reset and retry-after. The default value for a
    /// ban (<see cref="IsBan"/>) and for a refusal by an adaptive concurrency limit, which are answered without a
    /// rule's limit being decided in the store; <see cref="Rule"/>, <see cref="Tier"/> and <see cref="RetryAfter"/> name them.
    /// </summary>
    public RateLimitDecision Decision { get; }

    /// <summary>The tier that rejected the request.</summary>
    public RateLimitTier Tier { get; }

    /// <summary>The name of the rule (or named policy) that rejected the request; for a ban, the edge rule that started it.</summary>
    public string Rule { get; }

    /// <summary>When a retry may be admitted (whole seconds, as sent in <c>Retry-After</c>); <see langword="null"/> when retrying can never help.</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>The remaining budget of the rule that rejected the request (zero for a ban).</summary>
    public long Remaining => Decision.Remaining;

    /// <summary>The sentence Floodgate's own problem details would carry, naming the tier, rule and retry.</summary>
    public string Detail { get; }

    /// <summary>Whether the client IP is banned by an edge rule's ban, rather than over a limit now.</summary>
    public bool IsBan { get; }
}
