using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore;

/// <summary>Registers Floodgate in an ASP.NET Core application.</summary>
public static class FloodgateServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine, the <see cref="FloodgateRuntime"/> (the engine and the settings in force) and, unless a store is
    /// already registered, the in-memory store. Register an <see cref="Identity.IIdentityResolver"/> to resolve
    /// identities; without one, the application's own authenticated user (<c>HttpContext.User</c>) is the subject. The
    /// options are validated when the host starts: invalid ones stop it with an <see cref="OptionsValidationException"/>
    /// that gives the reason.
    /// </summary>
    public static IServiceCollection AddFloodgate(this IServiceCollection services, Action<FloodgateOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<FloodgateOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FloodgateOptions>, FloodgateOptionsValidator>());
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
        });
        services.TryAddSingleton<FloodgateRuntime>();
        return services;
    }

    /// <summary>
    /// Adds the Floodgate middleware. Call it after <c>UseRouting</c> (so rules see route templates and endpoint rules)
    /// and after authentication when the app authenticates requests itself.
    /// </summary>
    public static IApplicationBuilder UseFloodgate(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseMiddleware<FloodgateMiddleware>();
    }
}

/// <summary>Validates <see cref="FloodgateOptions"/> with <see cref="FloodgateOptions.Validate"/>, reporting its reason.</summary>
internal sealed class FloodgateOptionsValidator : IValidateOptions<FloodgateOptions>
{
    public ValidateOptionsResult Validate(string? name, FloodgateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException e)
        {
            return ValidateOptionsResult.Fail(e.Message);
        }
    }
}
