using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.Gateway.Admin.Auth;

/// <summary>
/// The admin port's authentication and authorization, for every protected admin endpoint (the admin API, the dashboard):
/// register it once with <see cref="AddAdminAuthentication"/>, then protect endpoints or groups with
/// <see cref="RequireAdmin{TBuilder}"/>. <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c> stay open.
/// </summary>
internal static class AdminAuthorization
{
    /// <summary>The authentication scheme's name.</summary>
    public const string Scheme = "FloodgateAdmin";

    /// <summary>The authorization policy that admits a request with a valid admin token.</summary>
    public const string Policy = "FloodgateAdmin";

    /// <summary>
    /// Registers the admin scheme and policy; <paramref name="tokens"/> gives the tokens in force at each request, and
    /// <paramref name="clientCertificates"/> the client certificates required besides them (none when not given).
    /// </summary>
    public static IServiceCollection AddAdminAuthentication(this IServiceCollection services, Func<AdminTokenSet> tokens, Func<AdminClientCertificates?>? clientCertificates = null)
    {
        services.AddAuthentication(Scheme)
            .AddScheme<AdminAuthenticationOptions, AdminAuthenticationHandler>(Scheme, o =>
            {
                o.Tokens = tokens;
                o.ClientCertificates = clientCertificates ?? (() => null);
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(Policy, p => p.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser());
        return services;
    }

    /// <summary>Admits only requests with a valid admin token to <paramref name="builder"/>'s endpoints; the others get 401.</summary>
    public static TBuilder RequireAdmin<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder => builder.RequireAuthorization(Policy);

    /// <summary>The name of the admin token the request was authenticated with (for the admin log).</summary>
    public static string TokenName(this HttpContext context) => context.User.Identity?.Name ?? "unknown";
}
