using Floodgate.Rules;

namespace Floodgate.Engine;

/// <summary>
/// Sees each rejection the engine decides, enforced or shadow (<see cref="RateLimitDecision.IsShadowed"/>), with the
/// request it rejected: for a live view such as the gateway's dashboard. Called on the deciding thread, only for
/// rejections, so it costs the admitted path nothing; it must be quick and must not throw.
/// </summary>
public interface IRejectionObserver
{
    /// <summary>Called once per rejecting decision (a shadow rule's would-be rejection included).</summary>
    /// <param name="decision">The rejecting decision; its <see cref="RateLimitDecision.Rule"/> is set.</param>
    /// <param name="request">The request it rejected.</param>
    void OnRejected(in RateLimitDecision decision, IRequestContext request);
}
