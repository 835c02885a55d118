using Floodgate.AspNetCore.Identity;
using Floodgate.Engine;

namespace Floodgate.AspNetCore.Features;

/// <summary>
/// What Floodgate decided about the request, as a request feature: <c>HttpContext.Features.Get&lt;IFloodgateFeature&gt;()</c>,
/// set by the middleware once the request's identity is known, and absent on an endpoint with Floodgate disabled.
/// </summary>
public interface IFloodgateFeature
{
    /// <summary>The identity the tiers keyed on: the validated subject and plan, or anonymous.</summary>
    IdentityResult Identity { get; }

    /// <summary>
    /// The result of the tiers: for a request admitted, <see cref="RateLimitResult.Decision"/> is the most constrained
    /// decision (rule, tier, quota, remaining, reset), the one the limit headers carry; the default value while the
    /// tiers are being decided, and when no rule applied.
    /// </summary>
    RateLimitResult Result { get; }

    /// <summary>The most constrained decision that admitted the request: <see cref="Result"/>'s.</summary>
    RateLimitDecision Decision => Result.Decision;
}

/// <summary>The feature, one per request; the identity is also what the Floodgate authentication handler reuses.</summary>
internal sealed class FloodgateFeature : IFloodgateFeature
{
    public IdentityResult Identity { get; set; }

    /// <summary>Whether <see cref="Identity"/> was resolved by Floodgate's identity resolver (so the handler need not).</summary>
    public bool Resolved { get; set; }

    public RateLimitResult Result { get; set; }
}
