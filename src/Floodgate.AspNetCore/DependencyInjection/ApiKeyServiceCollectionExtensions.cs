using Floodgate.ApiKeys;
using Floodgate.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

// The conventional namespace of registration methods, so that they are found without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers API keys as an identity beside JWTs.</summary>
public static class ApiKeyServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ApiKeyIdentityResolver"/> over the registered <see cref="IApiKeyStore"/> (an in-process
    /// <see cref="MemoryApiKeyStore"/> when none is), and makes the <see cref="IIdentityResolver"/> a
    /// <see cref="CredentialIdentityResolver"/> of it and the <see cref="JwtIdentityResolver"/>, if one is registered
    /// (<c>AddFloodgateJwtIdentity</c>, before or after this call).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Configures the options: the key prefix, the key header, what routes accept by default.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddFloodgateApiKeys(this IServiceCollection services, Action<ApiKeyIdentityOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new ApiKeyIdentityOptions();
        configure?.Invoke(options);
        if (options.Validate() is { Count: > 0 } problems)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(configure));
        }

        services.TryAddSingleton<IApiKeyStore, MemoryApiKeyStore>();
        services.TryAddSingleton(sp => new ApiKeyIdentityResolver(
            sp.GetRequiredService<IApiKeyStore>(),
            options,
            sp.GetService<TimeProvider>(),
            sp.GetService<ILogger<ApiKeyIdentityResolver>>(),
            sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));

        // In place of the JWT resolver as the resolver the middleware asks, whichever was registered first.
        services.RemoveAll<IIdentityResolver>();
        services.AddSingleton<IIdentityResolver>(sp => new CredentialIdentityResolver(sp.GetService<JwtIdentityResolver>(), sp.GetRequiredService<ApiKeyIdentityResolver>()));
        return services;
    }
}
