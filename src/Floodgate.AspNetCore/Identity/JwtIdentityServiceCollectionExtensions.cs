using Floodgate.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

// The conventional namespace of registration methods, so that they are found without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="JwtIdentityResolver"/>.</summary>
public static class JwtIdentityServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="JwtIdentityResolver"/> as the <see cref="IIdentityResolver"/> singleton, with its options
    /// validated at start (a host fails to start with a message naming each bad field).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Configures the options.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddFloodgateJwtIdentity(this IServiceCollection services, Action<JwtIdentityOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<JwtIdentityOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JwtIdentityOptions>, JwtIdentityOptionsValidator>());
        services.TryAddSingleton<JwtIdentityResolver>();
        services.TryAddSingleton<IIdentityResolver>(static sp => sp.GetRequiredService<JwtIdentityResolver>());
        return services;
    }
}
