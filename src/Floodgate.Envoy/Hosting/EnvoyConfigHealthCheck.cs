using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Floodgate.Envoy;

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
