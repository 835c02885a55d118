using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>How to run a gateway: the policy file, the addresses, and what tests or embedders replace.</summary>
public sealed class GatewayHostOptions
{
    /// <summary>The policy file.</summary>
    public required string PolicyPath { get; init; }

    /// <summary>Where the proxy listens, such as <c>http://127.0.0.1:8080</c>; port 0 picks a free port.</summary>
    public Uri Listen { get; init; } = new("http://127.0.0.1:8080");

    /// <summary>Where the admin endpoints (<c>/metrics</c>, <c>/healthz</c>, <c>/readyz</c>) listen; <see langword="null"/> for none.</summary>
    public Uri? Admin { get; init; } = new("http://127.0.0.1:9090");

    /// <summary>
    /// Where the Envoy rate limit gRPC service listens (HTTP/2 cleartext), sharing the gateway's store;
    /// <see langword="null"/> for none.
    /// </summary>
    public Uri? Envoy { get; init; }

    /// <summary>The directory of envoyproxy/ratelimit YAML files the Envoy service reads; required with <see cref="Envoy"/>.</summary>
    public string? EnvoyConfigDirectory { get; init; }

    /// <summary>Whether a change to the policy file is applied without a restart. Default on.</summary>
    public bool WatchPolicy { get; init; } = true;

    /// <summary>The clock of the store and the engine; the system clock by default. Tests use a fake one.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>A store to use instead of the one the policy names, such as a store shared between hosts in a test.</summary>
    public IRateLimitStore? Store { get; init; }

    /// <summary>The least severe log level written. Default <see cref="LogLevel.Information"/>.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>Extra endpoints on the admin port, such as the demo's JWKS.</summary>
    public Action<Microsoft.AspNetCore.Routing.IEndpointRouteBuilder>? MapAdminEndpoints { get; init; }

    /// <summary>Throws when an option is invalid, naming it.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(PolicyPath);
        if (Envoy is not null && string.IsNullOrWhiteSpace(EnvoyConfigDirectory))
        {
            throw new ArgumentException("GatewayHostOptions.EnvoyConfigDirectory is required with Envoy: the directory of envoyproxy/ratelimit YAML files.", nameof(EnvoyConfigDirectory));
        }
        foreach (var (name, uri) in new[] { (nameof(Listen), (Uri?)Listen), (nameof(Admin), Admin), (nameof(Envoy), Envoy) })
        {
            if (uri is not null && (!uri.IsAbsoluteUri || uri.Scheme != Uri.UriSchemeHttp || uri.AbsolutePath != "/"))
            {
                throw new ArgumentException($"GatewayHostOptions.{name} must be an http:// address with no path, such as http://127.0.0.1:8080, not '{uri}'.", name);
            }
        }
    }
}
