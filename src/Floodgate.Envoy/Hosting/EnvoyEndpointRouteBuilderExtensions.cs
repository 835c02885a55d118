using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.Envoy;

/// <summary>Maps Floodgate's Envoy rate limit service.</summary>
public static class EnvoyEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>envoy.service.ratelimit.v3.RateLimitService</c> and the gRPC health service (<c>grpc.health.v1.Health</c>).
    /// Both need HTTP/2: host them on a listener with <c>HttpProtocols.Http2</c> (cleartext is what Envoy's
    /// <c>rate_limit_service</c> cluster speaks by default), and restrict them to it with <c>RequireHost("*:port")</c>
    /// on the returned builder.
    /// </summary>
    /// <param name="endpoints">The endpoint route builder.</param>
    /// <returns>A builder whose conventions apply to both services' endpoints.</returns>
    public static IEndpointConventionBuilder MapFloodgateEnvoy(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var service = endpoints.MapGrpcService<EnvoyRateLimitService>();
        var health = endpoints.MapGrpcHealthChecksService();
        return new CompositeConventionBuilder(service, health);
    }

    private sealed class CompositeConventionBuilder(params IEndpointConventionBuilder[] builders) : IEndpointConventionBuilder
    {
        public void Add(Action<EndpointBuilder> convention)
        {
            foreach (var builder in builders)
            {
                builder.Add(convention);
            }
        }

        public void Finally(Action<EndpointBuilder> finallyConvention)
        {
            foreach (var builder in builders)
            {
                builder.Finally(finallyConvention);
            }
        }
    }
}
