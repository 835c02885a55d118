using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Configuration;
using Floodgate.AspNetCore.Hosting;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Stores;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

// The conventional namespace of registration methods, so that they are found without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Floodgate in an ASP.NET Core application.</summary>
public static class FloodgateServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine, the <see cref="FloodgateRuntime"/> (the engine and the settings in force) and, unless a store is
    /// already registered, the in-memory store. Register an <see cref="Floodgate.AspNetCore.Identity.IIdentityResolver"/>
    /// (or <c>AddAuthentication().AddFloodgateJwt(...)</c>) to resolve identities; without one, the application's own
    /// authenticated user (<c>HttpContext.User</c>) is the subject. The options are validated when the host starts:
    /// invalid ones stop it with an <see cref="OptionsValidationException"/> that gives the reason.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options: named policies (<c>AddPolicy</c>), rules, rejections.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddFloodgate(this IServiceCollection services, Action<FloodgateOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<FloodgateOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IRateLimitStore>(sp => new MemoryStore(null, sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new RateLimitEngine(
            sp.GetRequiredService<IOptions<FloodgateOptions>>().Value.Policy,
            sp.GetRequiredService<IRateLimitStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<RateLimitEngine>>(),
            sp.GetService<System.Diagnostics.Metrics.IMeterFactory>())
        {
            Overrides = sp.GetService<Floodgate.Overrides.IOverrideStore>(),
            Bans = sp.GetService<Floodgate.Bans.IBanStore>(),
        });
        services.TryAddSingleton<FloodgateRuntime>();

        // Validates at start and applies reloads. Not an IValidateOptions: that would make a bad reload throw out of the
        // configuration's change callback (and out of every later read of the options) instead of being refused.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, FloodgateStartup>());
        return services;
    }

    /// <summary>
    /// Adds Floodgate with its options bound from <paramref name="configuration"/> (such as
    /// <c>builder.Configuration.GetSection("Floodgate")</c>), then set by <paramref name="configure"/>. A bad value stops
    /// the host at start with an <see cref="OptionsValidationException"/> naming its configuration path; a change is
    /// applied to the requests that start after it, and a bad change is refused with an error log naming the path, the
    /// last good settings staying in force. See docs/aspnetcore.md for the fields.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The section: <c>Policies</c>, <c>TrustedProxies</c>, <c>Anonymous</c>, <c>Headers</c>, <c>RejectionStatusCodes</c>…</param>
    /// <param name="configure">Sets what configuration cannot hold (<see cref="FloodgateOptions.OnRejected"/>, rules built in code); runs after the binding, on every reload.</param>
    /// <returns><paramref name="services"/>.</returns>
    public static IServiceCollection AddFloodgate(this IServiceCollection services, IConfiguration configuration, Action<FloodgateOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddSingleton<IConfigureOptions<FloodgateOptions>>(new FloodgateConfigurationReader(configuration));
        services.AddSingleton<IOptionsChangeTokenSource<FloodgateOptions>>(new ConfigurationChangeTokenSource<FloodgateOptions>(configuration));
        return services.AddFloodgate(configure);
    }
}
