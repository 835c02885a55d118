using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Identity;

/// <summary>Builds the <see cref="JwtIdentityResolver"/> of a policy's <c>identity.jwt</c> section.</summary>
internal static class IdentityFactory
{
    /// <exception cref="PolicyException">The resolver refuses the options.</exception>
    public static JwtIdentityResolver Create(JwtIdentityOptions options, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        try
        {
            return new JwtIdentityResolver(Options.Create(options), time, loggerFactory.CreateLogger<JwtIdentityResolver>());
        }
        catch (OptionsValidationException e)
        {
            throw new PolicyException([.. e.Failures.Select(f => new PolicyError("policy", 0, 0, "identity.jwt", f))]);
        }
    }
}
