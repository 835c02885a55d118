using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Floodgate.Envoy;

/// <summary>Loads the configuration when the host starts (refusing to start on an invalid one) and stops watching at shutdown.</summary>
internal sealed class EnvoyConfigHostedService(EnvoyConfigProvider provider) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        provider.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        provider.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Healthy once a configuration with at least one domain is loaded; unhealthy (not serving) while none is; degraded
/// (still serving the last good configuration) while the latest reload has failed.
/// </summary>
internal sealed class EnvoyConfigHealthCheck(EnvoyConfigProvider provider) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (provider.Generation == 0)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("No rate limit configuration has loaded yet."));
        }

        if (provider.Current.Domains.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(provider.LastError is { } failed
                ? $"No rate limit domain is loaded; the latest reload failed: {failed}"
                : "No rate limit domain is loaded: the configuration directory declares none, so every request would be answered OK."));
        }

        return Task.FromResult(provider.LastError is { } error
            ? HealthCheckResult.Degraded($"Serving the last good configuration; the latest reload failed: {error}")
            : HealthCheckResult.Healthy($"{provider.Current.Domains.Count} domains, {provider.Current.RuleCount} rules."));
    }
}
