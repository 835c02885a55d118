using Floodgate.AspNetCore.Authentication;
using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.DependencyInjection.Extensions;

// The conventional namespace of registration methods, so that they are found without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds Floodgate's JWT validation to ASP.NET Core authentication.</summary>
public static class FloodgateAuthenticationBuilderExtensions
{
    /// <summary>
    /// Adds the <see cref="FloodgateJwtDefaults.AuthenticationScheme"/> scheme: Bearer JWTs validated by Floodgate's
    /// <see cref="JwtIdentityResolver"/> (registered here, as by <c>AddFloodgateJwtIdentity</c>), so that
    /// <c>HttpContext.User</c> is the principal Floodgate keys on and each token is validated once. Other schemes of the
    /// app (Basic, API keys, cookies) keep their requests: Floodgate keys on the user they establish, and never answers
    /// 401 to a request that carries their credentials.
    /// </summary>
    /// <param name="builder">The authentication builder, from <c>AddAuthentication(FloodgateJwtDefaults.AuthenticationScheme)</c>.</param>
    /// <param name="configure">Configures the validation: authority or keys, audiences, subject and plan claims.</param>
    /// <returns><paramref name="builder"/>.</returns>
    public static AuthenticationBuilder AddFloodgateJwt(this AuthenticationBuilder builder, Action<JwtIdentityOptions> configure) =>
        builder.AddFloodgateJwt(FloodgateJwtDefaults.AuthenticationScheme, configure);

    /// <summary>Adds the Floodgate JWT scheme under the name <paramref name="scheme"/>.</summary>
    /// <param name="builder">The authentication builder.</param>
    /// <param name="scheme">The scheme's name.</param>
    /// <param name="configure">Configures the validation.</param>
    /// <returns><paramref name="builder"/>.</returns>
    public static AuthenticationBuilder AddFloodgateJwt(this AuthenticationBuilder builder, string scheme, Action<JwtIdentityOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(scheme);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddFloodgateJwtIdentity(configure);
        builder.Services.TryAddSingleton<FloodgateAuthenticationMarker>();
        return builder.AddScheme<AuthenticationSchemeOptions, FloodgateJwtAuthenticationHandler>(scheme, null);
    }
}
