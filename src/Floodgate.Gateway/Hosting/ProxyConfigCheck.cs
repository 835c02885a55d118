using Floodgate.Gateway.Policy;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Hosting;

/// <summary>The proxy's checks of a policy's routes and clusters, as errors of the policy.</summary>
internal static class ProxyConfigCheck
{
    /// <summary>
    /// The proxy's own checks of the policy's routes and clusters. The proxy checks a configuration only once it is handed
    /// over, and then logs and keeps its previous one: checked first, a configuration it would refuse refuses the reload
    /// (or the start, or <c>floodgate check</c>) with the rules, instead of leaving new rules in force over old routes.
    /// </summary>
    public static IReadOnlyList<PolicyError> Validate(GatewayPolicy policy, IConfigValidator validator)
    {
        var errors = new List<PolicyError>();
        foreach (var route in policy.Routes)
        {
            // The checks complete synchronously (they look up named policies); the interface is asynchronous for others.
            foreach (var error in validator.ValidateRouteAsync(route).AsTask().GetAwaiter().GetResult())
            {
                errors.Add(new PolicyError(policy.Source, 0, 0, "routes", $"route '{route.RouteId}': {error.Message}"));
            }
        }

        foreach (var cluster in policy.Clusters)
        {
            foreach (var error in validator.ValidateClusterAsync(cluster).AsTask().GetAwaiter().GetResult())
            {
                errors.Add(new PolicyError(policy.Source, 0, 0, "clusters", $"cluster '{cluster.ClusterId}': {error.Message}"));
            }
        }

        return errors;
    }
}
