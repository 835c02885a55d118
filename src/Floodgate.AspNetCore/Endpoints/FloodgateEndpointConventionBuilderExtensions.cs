using Floodgate.AspNetCore.Endpoints;
using Floodgate.AspNetCore.Policies;
using Floodgate.Limits;
using Floodgate.Rules;

// The conventional namespace of endpoint conventions, so that they are found without a using of ours.
namespace Microsoft.AspNetCore.Builder;

/// <summary>Attaches Floodgate rules to an application's own endpoints: the service tier inside an app.</summary>
public static class FloodgateEndpointConventionBuilderExtensions
{
    /// <summary>
    /// Limits the endpoint with a rule that applies to requests routing matched to this endpoint only: not to another
    /// endpoint whose route matches the same path (<c>/orders/export</c> beside <c>/orders/{id}</c>) or that differs by
    /// host. A name given to several endpoints, or a rule given to a group, makes one rule per endpoint, each with its
    /// own budget.
    /// </summary>
    /// <param name="builder">The endpoint.</param>
    /// <param name="name">The rule's name, shown in headers, logs and metrics.</param>
    /// <param name="limit">The limit.</param>
    /// <param name="tier">The tier; default <see cref="RateLimitTier.Service"/> (answered 503).</param>
    /// <param name="key">The key; default the tier's (service: the route).</param>
    /// <param name="cost">What one request costs.</param>
    /// <param name="mode">Enforce or shadow.</param>
    public static TBuilder WithFloodgateRule<TBuilder>(this TBuilder builder, string name, Limit limit, RateLimitTier tier = RateLimitTier.Service, IReadOnlyList<KeyPart>? key = null, long cost = 1, RuleMode mode = RuleMode.Enforce)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var metadata = new FloodgateRuleMetadata(name, limit, tier, key, cost, mode);
        builder.Add(endpoint => endpoint.Metadata.Add(metadata));
        return builder;
    }

    /// <summary>Limits the endpoint with a token bucket of <paramref name="rate"/>, such as <c>100/s</c>.</summary>
    /// <exception cref="FormatException">The rate is malformed.</exception>
    public static TBuilder WithFloodgateRule<TBuilder>(this TBuilder builder, string name, string rate, RateLimitTier tier = RateLimitTier.Service)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithFloodgateRule(name, Limit.Gcra(Rate.Parse(rate)), tier);

    /// <summary>Holds the endpoint to <paramref name="permits"/> requests in flight; more are answered 503.</summary>
    public static TBuilder WithFloodgateConcurrency<TBuilder>(this TBuilder builder, string name, long permits)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithFloodgateRule(name, Limit.Concurrency(permits), RateLimitTier.Service);

    /// <summary>
    /// Applies the named policy <paramref name="policyName"/> (registered with <c>AddFloodgate(o => o.AddPolicy(...))</c>
    /// or in configuration) to the endpoint: every endpoint that requires one policy shares its one budget. The same
    /// as <see cref="EnableFloodgateAttribute"/> on a controller, action or Razor page.
    /// </summary>
    /// <param name="builder">The endpoint, or a group.</param>
    /// <param name="policyName">The policy's name; an unknown name stops the host at start.</param>
    /// <returns><paramref name="builder"/>.</returns>
    public static TBuilder RequireFloodgate<TBuilder>(this TBuilder builder, string policyName)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var metadata = new EnableFloodgateAttribute(policyName);
        builder.Add(endpoint => endpoint.Metadata.Add(metadata));
        return builder;
    }

    /// <summary>
    /// Exempts the endpoint from Floodgate: no tier, policy or endpoint rule counts or refuses its requests (health
    /// checks, metrics). The same as <see cref="DisableFloodgateAttribute"/>; it wins over any policy the endpoint requires.
    /// </summary>
    /// <param name="builder">The endpoint, or a group.</param>
    /// <returns><paramref name="builder"/>.</returns>
    public static TBuilder DisableFloodgate<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Add(static endpoint => endpoint.Metadata.Add(DisableFloodgateAttribute.Instance));
        return builder;
    }
}
