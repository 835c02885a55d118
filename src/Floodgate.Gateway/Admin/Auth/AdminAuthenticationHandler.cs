using System.Security.Claims;
using System.Text.Encodings.Web;
using Floodgate.Logging;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Admin.Auth;

/// <summary>The options of the admin authentication scheme: where the tokens in force come from.</summary>
internal sealed class AdminAuthenticationOptions : AuthenticationSchemeOptions
{
    /// <summary>The tokens in force, read per request so that a policy reload applies at once.</summary>
    public Func<AdminTokenSet> Tokens { get; set; } = () => AdminTokenSet.None;

    /// <summary>The client certificates required besides a token, read per request like the tokens; <see langword="null"/> for none.</summary>
    public Func<AdminClientCertificates?> ClientCertificates { get; set; } = () => null;
}

/// <summary>
/// The admin authentication scheme: a bearer token compared with the policy's admin tokens
/// (<see cref="AdminTokenSet.Match"/>). The principal's name is the token's name, which the admin log records with
/// every change. A request without a valid token is refused with 401 and a problem body, and the refusal is logged.
/// When the policy names client certificates (<see cref="AdminClientCertificates"/>), the request's TLS connection must
/// also have presented one of them, or it is refused the same way before its token is looked at.
/// </summary>
internal sealed partial class AdminAuthenticationHandler(IOptionsMonitor<AdminAuthenticationOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AdminAuthenticationOptions>(options, logger, encoder)
{
    private const string ReasonItem = "Floodgate.Admin.RefusalReason";
    private const string CertificateItem = "Floodgate.Admin.CertificateRefused";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (Options.ClientCertificates() is { } certificates && certificates.Refusal(Context.Connection.ClientCertificate) is { } refusal)
        {
            Context.Items[CertificateItem] = true;
            return Task.FromResult(Refuse(Request.IsHttps ? refusal : $"{refusal}: the admin port is not https"));
        }

        var header = Request.Headers.Authorization.ToString();
        if (header.Length == 0)
        {
            return Task.FromResult(Refuse("no bearer token"));
        }

        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(Refuse("not a bearer token"));
        }

        var tokens = Options.Tokens();
        if (tokens.Tokens.Count == 0)
        {
            return Task.FromResult(Refuse("no admin tokens are configured (policy admin.tokens)"));
        }

        if (tokens.Match(header.AsSpan("Bearer ".Length).Trim()) is not { } name)
        {
            return Task.FromResult(Refuse("unknown token"));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], Scheme.Name, ClaimTypes.Name, ClaimTypes.Role);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var reason = Context.Items.TryGetValue(ReasonItem, out var r) ? (string)r! : "no bearer token";
        LogRefused(Logger, reason, LogValues.Escape(Request.Method)!, LogValues.Escape(Request.Path.Value)!, Context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer realm=\"floodgate-admin\"";
        await Results.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: "Unauthorized",
            detail: Context.Items.ContainsKey(CertificateItem)
                ? "The admin API needs a trusted client certificate (admin.client_certificates) and a valid admin token."
                : "The admin API needs a valid admin token: Authorization: Bearer <token>.").ExecuteAsync(Context).ConfigureAwait(false);
    }

    private AuthenticateResult Refuse(string reason)
    {
        Context.Items[ReasonItem] = reason;
        return reason == "no bearer token" ? AuthenticateResult.NoResult() : AuthenticateResult.Fail(reason);
    }

    [LoggerMessage(1, LogLevel.Warning, "Admin request refused ({Reason}): {Method} {Path} from {Remote}")]
    private static partial void LogRefused(ILogger logger, string reason, string method, string path, string remote);
}
