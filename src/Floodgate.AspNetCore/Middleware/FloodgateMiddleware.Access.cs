using Floodgate.AspNetCore.Access;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Middleware;

// The access step: the deny lists (403 before any other work) and the bypass rules (the request decided on the policy
// without the rule's tiers), asked before anything else and again once the identity is known.
public sealed partial class FloodgateMiddleware
{
    /// <summary>The deny list's and bypass rules' verdict on what is known before any work; a bypass replaces <paramref name="settings"/>.</summary>
    private static AccessVerdict BeforeIdentity(HttpContext context, HttpRequestContext request, ref CompiledSettings settings) =>
        settings.Access is { } access ? access.BeforeIdentity(context, request.ClientIp, ref settings) : AccessVerdict.None;

    /// <summary>
    /// Whether the validated subject is denied; otherwise a bypass rule that matches its claims replaces
    /// <paramref name="settings"/>, unless one matched already (<paramref name="verdict"/>).
    /// </summary>
    private static bool AfterIdentity(in IdentityResult identity, ref AccessVerdict verdict, ref CompiledSettings settings)
    {
        if (settings.Access is not { ChecksIdentity: true } access)
        {
            return false;
        }

        var after = access.AfterIdentity(identity, verdict == AccessVerdict.Bypassed, ref settings);
        if (after == AccessVerdict.Bypassed)
        {
            verdict = after;
        }

        return after == AccessVerdict.Denied;
    }
}
