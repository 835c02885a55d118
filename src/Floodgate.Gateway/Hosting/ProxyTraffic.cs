using Floodgate.AspNetCore.Middleware;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// What the gateway adds to YARP to carry its traffic: the HTTP client factory that applies a cluster's <c>tls</c>
/// section (<see cref="UpstreamClientFactory"/>), and on every route the forwarding headers it can vouch for
/// (<see cref="TrustedForwarding"/>) and the early headers of event streams (<see cref="EventStreamFlush"/>).
/// </summary>
internal static class ProxyTraffic
{
    /// <summary>Adds them to the proxy <paramref name="proxy"/> builds.</summary>
    public static IReverseProxyBuilder AddProxyTraffic(this IReverseProxyBuilder proxy)
    {
        proxy.Services.Replace(ServiceDescriptor.Singleton<IForwarderHttpClientFactory, UpstreamClientFactory>());
        proxy.AddTransforms<RouteTransforms>();
        return proxy;
    }

    /// <summary>Adds the two transforms to each route as it is built (at start, and when a reload changes the route).</summary>
    private sealed class RouteTransforms(FloodgateRuntime floodgate) : ITransformProvider
    {
        private readonly TrustedForwarding _forwarding = new(floodgate);

        public void ValidateRoute(TransformRouteValidationContext context)
        {
        }

        public void ValidateCluster(TransformClusterValidationContext context)
        {
        }

        public void Apply(TransformBuilderContext context)
        {
            // First, so that YARP's X-Forwarded transforms (built from the route's own list, before providers run) see
            // only what it kept; not with x_forwarded: off, whose promise is to pass the headers as they came.
            if (!IsOff(context.Route))
            {
                context.RequestTransforms.Insert(0, _forwarding);
            }

            // Last: no response header can be set once the headers are sent.
            context.ResponseTransforms.Add(EventStreamFlush.Instance);
        }

        private static bool IsOff(RouteConfig? route) =>
            route?.Transforms?.FirstOrDefault(t => t.ContainsKey("X-Forwarded")) is { } transform
            && string.Equals(transform["X-Forwarded"], "Off", StringComparison.OrdinalIgnoreCase);
    }
}
