using System.Diagnostics.Metrics;
using Floodgate.Client;
using Floodgate.Client.Options;
using Floodgate.Client.Pacing;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Floodgate's pacing handler on an <c>HttpClient</c>.</summary>
public static class FloodgateHttpClientBuilderExtensions
{
    /// <summary>
    /// Paces the client's requests from the limit fields of its answers (<c>RateLimit</c>, <c>RateLimit-Policy</c>,
    /// <c>X-RateLimit-*</c>), holds a permit per request in flight under a concurrency limit, and waits out a 429 or 503
    /// (Retry-After, with full jitter) before retrying an idempotent request. All requests of this client to one server
    /// and partition share one pacer. A final rejection is returned as the response: read its problem details with
    /// <see cref="RateLimitProblem.ReadAsync"/>.
    /// </summary>
    /// <remarks>
    /// Add it after a resilience handler (<c>AddStandardResilienceHandler</c>) so that it sits closer to the network:
    /// each attempt is then paced, and the resilience handler sees only what the pacer could not avoid. The clock is the
    /// service provider's <see cref="TimeProvider"/> (<see cref="TimeProvider.System"/> unless one is registered).
    /// </remarks>
    /// <param name="builder">The client.</param>
    /// <param name="configure">Sets the client's <see cref="FloodgatePacingOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static IHttpClientBuilder AddFloodgatePacing(this IHttpClientBuilder builder, Action<FloodgatePacingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(static provider => new PacerRegistry(provider.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(static provider => new PacingMetrics(provider.GetService<IMeterFactory>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FloodgatePacingOptions>, FloodgatePacingOptionsValidator>());

        var options = services.AddOptions<FloodgatePacingOptions>(builder.Name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        var name = builder.Name;
        builder.AddHttpMessageHandler(provider => new PacingHandler(
            provider.GetRequiredService<PacerRegistry>().ClientFor(name),
            provider.GetRequiredService<IOptionsMonitor<FloodgatePacingOptions>>().Get(name),
            provider.GetRequiredService<PacingMetrics>()));
        return builder;
    }
}
