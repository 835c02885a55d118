using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.AspNetCore.Endpoints;

/// <summary>
/// A rule attached to an endpoint: it applies to the endpoints that carry this metadata only (not to other endpoints
/// whose routes match the same paths), each with a budget of its own. Added with
/// <see cref="Microsoft.AspNetCore.Builder.FloodgateEndpointConventionBuilderExtensions.WithFloodgateRule{TBuilder}(TBuilder, string, Limit, RateLimitTier, IReadOnlyList{KeyPart}?, long, RuleMode)"/>.
/// </summary>
public sealed class FloodgateRuleMetadata
{
    /// <summary>Creates the metadata.</summary>
    /// <exception cref="ArgumentException">The name is empty or not printable ASCII (it is sent in headers), or the cost negative.</exception>
    public FloodgateRuleMetadata(string name, Limit limit, RateLimitTier tier = RateLimitTier.Service, IReadOnlyList<KeyPart>? key = null, long cost = 1, RuleMode mode = RuleMode.Enforce)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!FloodgateOptions.IsValidRuleName(name))
        {
            throw new ArgumentException(FloodgateOptions.RuleNameProblem(name), nameof(name));
        }

        ArgumentNullException.ThrowIfNull(limit);
        ArgumentOutOfRangeException.ThrowIfNegative(cost);
        if (!Enum.IsDefined(tier))
        {
            throw new ArgumentOutOfRangeException(nameof(tier), tier, "Unknown tier.");
        }

        Name = name;
        Limit = limit;
        Tier = tier;
        Key = key;
        Cost = cost;
        Mode = mode;
    }

    /// <summary>The rule's name.</summary>
    public string Name { get; }

    /// <summary>The limit.</summary>
    public Limit Limit { get; }

    /// <summary>The tier; the service tier by default, an endpoint's capacity.</summary>
    public RateLimitTier Tier { get; }

    /// <summary>The key; <see langword="null"/> for the tier's default.</summary>
    public IReadOnlyList<KeyPart>? Key { get; }

    /// <summary>What one request costs.</summary>
    public long Cost { get; }

    /// <summary>Whether the rule enforces or only observes.</summary>
    public RuleMode Mode { get; }

    /// <summary>
    /// The rule for one endpoint that carries this metadata: it applies when <paramref name="isEndpoint"/> says the
    /// request is that endpoint's, and its <c>route</c> key part is <paramref name="template"/>.
    /// </summary>
    internal RateLimitRule ToRule(string ruleName, string template, IReadOnlyList<string> methods, Func<IRequestContext, bool> isEndpoint)
    {
        var match = new RuleMatch { Methods = methods, Condition = isEndpoint, RouteKey = template };
        return Key is null
            ? new RateLimitRule(ruleName, Tier, Limit) { Match = match, Cost = Cost, Mode = Mode }
            : new RateLimitRule(ruleName, Tier, Limit) { Match = match, Cost = Cost, Mode = Mode, Key = Key };
    }
}
