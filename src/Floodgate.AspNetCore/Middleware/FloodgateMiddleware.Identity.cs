using System.Buffers;
using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Claims;
using Floodgate.AspNetCore.Costs;
using Floodgate.AspNetCore.Features;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Policies;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.AspNetCore.Middleware;

// The identity step: who the request is (cached, from the application's authentication, or resolved), whether it may
// go on, and the 401 or 503 when it may not.
public sealed partial class FloodgateMiddleware
{
    /// <summary>
    /// The identity when it costs no signature check and no I/O: the one the Floodgate authentication handler resolved
    /// for this request, the user the application's authentication established, the resolver's cached answer or, without
    /// a resolver, anonymous; <see langword="false"/> when only <see cref="ResolveAsync"/> can tell.
    /// </summary>
    private bool TryResolveCached(HttpContext context, CompiledSettings settings, FloodgateFeature feature, out IdentityResult identity)
    {
        if (feature.Resolved)
        {
            identity = feature.Identity;
            return true;
        }

        if (_identity is null || context.User.Identity is { IsAuthenticated: true } || IsOtherSchemes(context))
        {
            identity = ApplicationUser(context, settings);
            return true;
        }

        if (!_identity.TryResolveCached(context, out identity))
        {
            return false;
        }

        feature.Identity = identity;
        feature.Resolved = true;
        return true;
    }

    private async ValueTask<IdentityResult> ResolveAsync(HttpContext context, CompiledSettings settings, FloodgateFeature feature, CancellationToken aborted)
    {
        if (feature.Resolved)
        {
            return feature.Identity;
        }

        if (_identity is null || context.User.Identity is { IsAuthenticated: true } || IsOtherSchemes(context))
        {
            return ApplicationUser(context, settings);
        }

        var identity = await _identity.ResolveAsync(context, aborted).ConfigureAwait(false);
        feature.Identity = identity;
        feature.Resolved = true;
        return identity;
    }

    /// <summary>
    /// Whether the request carries credentials of another scheme than Bearer (Basic, an API key scheme's) in an app whose
    /// ASP.NET authentication has Floodgate's scheme beside others: those are authentication's to judge, never answered
    /// 401 "expected a Bearer token" here. Until authentication has established a user, such a request is anonymous.
    /// </summary>
    private bool IsOtherSchemes(HttpContext context) =>
        _authenticationHasOtherSchemes && context.Request.Headers.Authorization is { Count: > 0 } values
        && !(values[0] ?? string.Empty).TrimStart().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The user the application's authentication established, when its subject claim (or name identifier, or name) names
    /// one; else anonymous.
    /// </summary>
    private static IdentityResult ApplicationUser(HttpContext context, CompiledSettings settings) =>
        context.User.Identity is ClaimsIdentity { IsAuthenticated: true } user
            && (user.FindFirst(settings.SubjectClaim)?.Value ?? user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? user.Name) is { Length: > 0 } subject
            ? IdentityResult.Valid(subject, user.FindFirst(settings.PlanClaim)?.Value, user)
            : IdentityResult.Anonymous;

    /// <summary>
    /// Records <paramref name="identity"/> on <paramref name="request"/> when the request may go on with it (anonymous
    /// callers keyed by client IP); <see langword="false"/>, recording nothing, when it is to be answered 401 (or 503
    /// when the credentials cannot be checked now).
    /// </summary>
    private static bool Admit(HttpRequestContext request, in IdentityResult identity, CompiledSettings settings)
    {
        switch (identity.Status)
        {
            case IdentityStatus.Valid:
                request.SetIdentity(identity);
                return true;
            case IdentityStatus.Invalid or IdentityStatus.Unavailable:
                return false;
        }

        if (settings.Anonymous == AnonymousPolicy.Reject)
        {
            return false;
        }

        // Anonymous callers are keyed by client IP wherever the user tier keys on the subject, in a key namespace of
        // their own: a validated subject that reads "ip:203.0.113.7" is not the anonymous caller at that address.
        if (request.ClientIp is { } ip)
        {
            request.SetAnonymous(ClientAddress.Name(ip, settings.Policy.Ipv6PrefixLength));
        }

        return true;
    }
}
