using Floodgate.AspNetCore.Access;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.RateLimitIds;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Middleware;

// The access step: the deny lists (403 before any other work) and the bypass rules (the request decided on the policy
// without the rule's tiers), asked before anything else and again once the identity is known; and, once it is known, the
// rate-limit id's binding to the subject.
public sealed partial class FloodgateMiddleware
{
    /// <summary>Why a request is refused once its identity is known.</summary>
    private enum IdentityRefusal
    {
        None,
        DeniedSubject,
        WrongRateLimitId,
    }

    /// <summary>The deny list's and bypass rules' verdict on what is known before any work; a bypass replaces <paramref name="settings"/>.</summary>
    private static AccessVerdict BeforeIdentity(HttpContext context, HttpRequestContext request, ref CompiledSettings settings) =>
        settings.Access is { } access ? access.BeforeIdentity(context, request.ClientIp, ref settings) : AccessVerdict.None;

    /// <summary>
    /// Whether the request is refused now that its identity is known: a denied subject, or a rate-limit id that is
    /// another subject's. Otherwise a bypass rule that matches its claims replaces <paramref name="settings"/>, unless one
    /// matched already (<paramref name="verdict"/>).
    /// </summary>
    private static IdentityRefusal AfterIdentity(HttpContext context, in IdentityResult identity, ref AccessVerdict verdict, ref CompiledSettings settings)
    {
        if (settings.RateLimitIds is { } ids && ids.Bind(context, identity) == RateLimitIdVerdict.Refuse)
        {
            return IdentityRefusal.WrongRateLimitId;
        }

        if (settings.Access is not { ChecksIdentity: true } access)
        {
            return IdentityRefusal.None;
        }

        var after = access.AfterIdentity(identity, verdict == AccessVerdict.Bypassed, ref settings);
        if (after == AccessVerdict.Bypassed)
        {
            verdict = after;
        }

        return after == AccessVerdict.Denied ? IdentityRefusal.DeniedSubject : IdentityRefusal.None;
    }

    private static Task RefuseAfterIdentityAsync(HttpContext context, CompiledSettings settings, IdentityRefusal refusal, RateLimitStep? step)
    {
        if (refusal == IdentityRefusal.WrongRateLimitId)
        {
            step?.Finish("invalid_id", default);
            return settings.RateLimitIds!.RefuseAsync(context);
        }

        step?.Finish("denied", default);
        return AccessResponses.WriteDeniedAsync(context, "subject");
    }
}
