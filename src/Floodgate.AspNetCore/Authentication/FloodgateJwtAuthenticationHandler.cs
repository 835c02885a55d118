using System.Security.Claims;
using System.Text.Encodings.Web;
using Floodgate.AspNetCore.Features;
using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Floodgate.AspNetCore.Authentication;

/// <summary>
/// Authenticates a Bearer JWT with Floodgate's <see cref="JwtIdentityResolver"/>, so that <c>HttpContext.User</c> is the
/// principal Floodgate keys on. A token is validated once per request whichever runs first: the middleware leaves the
/// identity it resolved on the request (<see cref="IFloodgateFeature"/>) and the handler takes it, or the handler
/// resolves it and the middleware takes it; and once per token while the resolver caches it.
/// </summary>
/// <remarks>
/// Where API keys are registered too (<c>AddFloodgateApiKeys</c>), the handler resolves through the same
/// <see cref="CredentialIdentityResolver"/> as the middleware: a key, as a Bearer token or in the key header, where the
/// endpoint accepts keys, gives <c>HttpContext.User</c> the key's subject, plan and account claims, as a JWT does.
/// A request without an Authorization header (or a key header), or with another scheme's (Basic), gets no result
/// here, so that other handlers judge it. A challenge answers 401 with <c>WWW-Authenticate: Bearer</c> and the RFC 6750
/// error of the refused token.
/// </remarks>
internal sealed class FloodgateJwtAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, JwtIdentityResolver jwt, IIdentityResolver registered)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    // The middleware's resolver when it routes between keys and JWTs, so both judge a request alike; the JWT resolver otherwise.
    private readonly IIdentityResolver _resolver = registered is CredentialIdentityResolver ? registered : jwt;
    private IdentityResult _identity;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var keyHeader = _resolver is CredentialIdentityResolver credentials && credentials.Keys.Presents(Context);
        var values = Request.Headers.Authorization;
        if (!keyHeader && (values.Count == 0 || string.IsNullOrWhiteSpace(values[0])))
        {
            return AuthenticateResult.NoResult();
        }

        if (!keyHeader && values.Count == 1 && !(values[0] ?? string.Empty).TrimStart().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return AuthenticateResult.NoResult();
        }

        if (Context.Features.Get<IFloodgateFeature>() is not FloodgateFeature feature)
        {
            feature = new FloodgateFeature();
            Context.Features.Set<IFloodgateFeature>(feature);
        }

        if (!feature.Resolved)
        {
            feature.Identity = await _resolver.ResolveAsync(Context, Context.RequestAborted).ConfigureAwait(false);
            feature.Resolved = true;
        }

        _identity = feature.Identity;
        return _identity.Status switch
        {
            // A copy: the cached identity is shared by every request with the token, and claims transformations may add to it.
            IdentityStatus.Valid => AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(_identity.Claims!.Clone()), Scheme.Name)),
            IdentityStatus.Anonymous => AuthenticateResult.NoResult(),
            _ => AuthenticateResult.Fail(_identity.ErrorDescription ?? _identity.Error ?? "invalid token"),
        };
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = 401;
        Response.Headers[HeaderNames.WWWAuthenticate] = _identity.Status == IdentityStatus.Invalid && _identity.Error is { } error
            ? $"Bearer error=\"{Printable(error)}\", error_description=\"{Printable(_identity.ErrorDescription ?? string.Empty)}\""
            : "Bearer";
        return Task.CompletedTask;
    }

    /// <summary>The text with what a quoted header parameter cannot carry replaced.</summary>
    private static string Printable(string text) =>
        string.Create(text.Length, text, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var c = source[i];
                span[i] = c is '"' or '\\' || c < ' ' || c > '~' ? '\'' : c;
            }
        });
}
