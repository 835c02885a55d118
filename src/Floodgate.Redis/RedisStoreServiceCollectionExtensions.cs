using System.Diagnostics.Metrics;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

// The conventional namespace of registration methods, so that they are found without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the <see cref="RedisStore"/> as the application's <see cref="IRateLimitStore"/>.</summary>
public static class RedisStoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="RedisStore"/> with the <see cref="RedisStoreOptions"/> bound here as the singleton
    /// <see cref="IRateLimitStore"/>, replacing any store registered before, and a hosted service that creates it when the
    /// host starts, so that it connects then.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options; <see cref="RedisStoreOptions.Configuration"/> is required.</param>
    /// <returns>The services.</returns>
    /// <remarks>
    /// <para>
    /// The store connects in the background and is never waited for: the host's start waits at most
    /// <see cref="RedisStoreOptions.Timeout"/> for the connection, and until it is made, decisions are answered at once
    /// by <see cref="RedisStoreOptions.FailureMode"/> (flagged as store failures), as while Redis is unreachable. Without a
    /// host (a service provider built by hand), the store starts connecting when it is first resolved.
    /// </para>
    /// <para>
    /// The options are validated when the host starts (and whenever they are read); an invalid option throws there with
    /// its name, and an invalid configuration string fails the start too. The store owns its connection and is disposed
    /// with the service provider; a connection still being made then is closed as soon as it is.
    /// </para>
    /// </remarks>
    public static IServiceCollection AddFloodgateRedisStore(this IServiceCollection services, Action<RedisStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<RedisStoreOptions>().Configure(configure).Validate(
            static options =>
            {
                options.Validate();
                return true;
            }).ValidateOnStart();
        services.TryAddSingleton(static provider => RedisStore.Start(
            provider.GetRequiredService<IOptions<RedisStoreOptions>>().Value,
            provider.GetService<TimeProvider>(),
            provider.GetService<ILogger<RedisStore>>(),
            provider.GetService<IMeterFactory>()));
        services.Replace(ServiceDescriptor.Singleton<IRateLimitStore>(static provider => provider.GetRequiredService<RedisStore>()));
        services.AddHostedService<RedisStoreConnector>();
        return services;
    }
}
