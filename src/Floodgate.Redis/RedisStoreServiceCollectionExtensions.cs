using System.Diagnostics.Metrics;
using Floodgate.Stores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Redis;

/// <summary>Registers the <see cref="RedisStore"/> as the application's <see cref="IRateLimitStore"/>.</summary>
public static class RedisStoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="RedisStore"/>, connected on first use with the <see cref="RedisStoreOptions"/> bound here,
    /// as the singleton <see cref="IRateLimitStore"/>, replacing any store registered before.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options; <see cref="RedisStoreOptions.Configuration"/> is required.</param>
    /// <returns>The services.</returns>
    /// <remarks>The options are validated when the store is first resolved; an invalid option throws there with its name.</remarks>
    public static IServiceCollection AddFloodgateRedisStore(this IServiceCollection services, Action<RedisStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<RedisStoreOptions>().Configure(configure).Validate(
            static options =>
            {
                options.Validate();
                return true;
            });
        services.TryAddSingleton(static provider => RedisStore.Connect(
            provider.GetRequiredService<IOptions<RedisStoreOptions>>().Value,
            provider.GetService<TimeProvider>(),
            provider.GetService<ILogger<RedisStore>>(),
            provider.GetService<IMeterFactory>()));
        services.Replace(ServiceDescriptor.Singleton<IRateLimitStore>(static provider => provider.GetRequiredService<RedisStore>()));
        return services;
    }
}
