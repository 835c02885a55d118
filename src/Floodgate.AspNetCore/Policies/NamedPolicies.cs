using Floodgate.AspNetCore.Http;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.AspNetCore.Policies;

/// <summary>
/// Named policies: rules that apply to the requests routed to an endpoint that requires them
/// (<see cref="EnableFloodgateAttribute"/>), one rule per name however many endpoints require it, so one budget.
/// </summary>
internal static class NamedPolicies
{
    /// <summary>
    /// The rule of the policy <paramref name="name"/>. Its key is the tier's, except in the service tier, where it is
    /// the policy itself rather than each endpoint's route: the endpoints that require it share one capacity.
    /// </summary>
    public static RateLimitRule Rule(string name, Limit limit, RateLimitTier tier, IReadOnlyList<KeyPart>? key, long cost, RuleMode mode)
    {
        var match = new RuleMatch { Condition = request => Requires(request, name) };
        key ??= tier == RateLimitTier.Service ? [] : null;
        return key is null
            ? new RateLimitRule(name, tier, limit) { Match = match, Cost = cost, Mode = mode }
            : new RateLimitRule(name, tier, limit) { Match = match, Cost = cost, Mode = mode, Key = key };
    }

    /// <summary>Whether the request was routed to an endpoint that requires the policy <paramref name="name"/>.</summary>
    private static bool Requires(IRequestContext request, string name)
    {
        if (request is not HttpRequestContext { Endpoint: { } endpoint })
        {
            return false;
        }

        foreach (var required in endpoint.Metadata.GetOrderedMetadata<EnableFloodgateAttribute>())
        {
            if (string.Equals(required.PolicyName, name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether Floodgate is off for <paramref name="endpoint"/> (<see cref="DisableFloodgateAttribute"/>).</summary>
    public static bool IsDisabled(Endpoint? endpoint) => endpoint?.Metadata.GetMetadata<DisableFloodgateAttribute>() is not null;

    /// <summary>Throws when an endpoint requires a policy <paramref name="options"/> does not have.</summary>
    /// <exception cref="ArgumentException">An endpoint requires an unknown policy; the message names both.</exception>
    public static void CheckRequired(IEnumerable<Endpoint> endpoints, FloodgateOptions options)
    {
        foreach (var endpoint in endpoints)
        {
            foreach (var required in endpoint.Metadata.GetOrderedMetadata<EnableFloodgateAttribute>())
            {
                if (!options.Policies.ContainsKey(required.PolicyName))
                {
                    var known = options.Policies.Count == 0 ? "no policy is registered" : "the policies are: " + string.Join(", ", options.Policies.Keys);
                    throw new ArgumentException(
                        $"The endpoint '{endpoint.DisplayName}' requires the Floodgate policy '{required.PolicyName}', which is not registered (AddFloodgate(o => o.AddPolicy(\"{required.PolicyName}\", ...)) or Floodgate:Policies:{required.PolicyName} in configuration); {known}.",
                        nameof(endpoints));
                }
            }
        }
    }

    /// <summary>The endpoints of <paramref name="endpoints"/>, or none.</summary>
    public static IReadOnlyList<Endpoint> Of(EndpointDataSource? endpoints) => endpoints?.Endpoints ?? [];
}
