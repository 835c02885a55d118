using Floodgate.Stores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.Envoy;

/// <summary>Registers Floodgate's Envoy rate limit service.</summary>
public static class EnvoyServiceCollectionExtensions
{
    /// <summary>The name of the health check that reports the configuration's state.</summary>
    public const string HealthCheckName = "floodgate_envoy_config";

    /// <summary>The name of the service's meter, to enable in OpenTelemetry (<c>AddMeter</c>) or dotnet-counters.</summary>
    public const string MeterName = EnvoyRateLimitMetrics.MeterName;

    /// <summary>
    /// Adds the Envoy rate limit service, its configuration provider (loaded when the host starts, hot-reloaded), gRPC,
    /// the gRPC health service and the <c>Floodgate.Envoy</c> meter.
    /// </summary>
    /// <remarks>
    /// Decisions go to the <see cref="IRateLimitStore"/> registered in the container, whenever it was registered; without
    /// one, the service keeps its own <see cref="MemoryStore"/>. The <see cref="TimeProvider"/> in the container, if
    /// any, is the clock.
    /// </remarks>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options; <see cref="EnvoyRateLimitOptions.ConfigDirectory"/> is required.</param>
    public static IServiceCollection AddFloodgateEnvoy(this IServiceCollection services, Action<EnvoyRateLimitOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<EnvoyRateLimitOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EnvoyRateLimitOptions>, EnvoyRateLimitOptionsValidator>());
        options.ValidateOnStart();

        services.AddGrpc();
        services.AddGrpcHealthChecks().AddCheck<EnvoyConfigHealthCheck>(HealthCheckName);
        services.AddMetrics();
        services.TryAddSingleton<EnvoyRateLimitMetrics>(sp => new EnvoyRateLimitMetrics(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton(sp => new EnvoyConfigProvider(
            sp.GetRequiredService<IOptions<EnvoyRateLimitOptions>>(),
            sp.GetService<TimeProvider>(),
            sp.GetService<ILogger<EnvoyConfigProvider>>(),
            sp.GetRequiredService<EnvoyRateLimitMetrics>()));
        services.TryAddSingleton(sp => new EnvoyRateLimitDecider(
            sp.GetRequiredService<EnvoyConfigProvider>(),
            sp.GetService<IRateLimitStore>() ?? new MemoryStore(null, sp.GetService<TimeProvider>()),
            sp.GetRequiredService<IOptions<EnvoyRateLimitOptions>>(),
            sp.GetRequiredService<EnvoyRateLimitMetrics>(),
            sp.GetService<TimeProvider>(),
            sp.GetService<ILogger<EnvoyRateLimitDecider>>()));
        services.TryAddSingleton(sp => new EnvoyRateLimitService(sp.GetRequiredService<EnvoyRateLimitDecider>()));
        services.AddHostedService<EnvoyConfigHostedService>();
        return services;
    }

    private sealed class EnvoyRateLimitOptionsValidator : IValidateOptions<EnvoyRateLimitOptions>
    {
        public ValidateOptionsResult Validate(string? name, EnvoyRateLimitOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (OptionsValidationException ex)
            {
                return ValidateOptionsResult.Fail(ex.Failures);
            }
        }
    }
}
