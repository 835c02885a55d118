using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Identity;

/// <summary>Builds the identity resolver an <c>identity.jwt</c> section describes.</summary>
internal static class IdentityFactory
{
    public static IIdentityResolver Create(JwtPolicy jwt, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(jwt);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        throw new PolicyException("identity.jwt: this build of the gateway has no JWT validator yet; remove the identity section or use a build with Floodgate's JwtIdentityResolver.");
    }
}
