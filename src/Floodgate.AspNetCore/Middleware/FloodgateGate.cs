using Floodgate.AspNetCore.Endpoints;
using Floodgate.AspNetCore.Http;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Middleware;

/// <summary>
/// The gate the middleware consults: the engine, and the settings in force. <see cref="Apply"/> swaps the settings
/// atomically (a hot reload); a request in flight finishes on the settings it started with.
/// </summary>
public sealed class FloodgateGate
{
    private readonly Lock _gate = new();
    private GateSettings _settings;
    private FloodgateOptions _options;
    private IReadOnlyList<RateLimitRule> _endpointRules = [];
    private int _endpointsAttached;

    /// <summary>Creates the gate with the options' settings in force.</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public FloodgateGate(RateLimitEngine engine, IOptions<FloodgateOptions> options)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        Engine = engine;
        _options = options.Value;
        _settings = Compile(_options, []);
        engine.UpdatePolicy(_settings.Policy);
    }

    /// <summary>The engine.</summary>
    public RateLimitEngine Engine { get; }

    /// <summary>The options in force.</summary>
    public FloodgateOptions Options => Volatile.Read(ref _options);

    /// <summary>The policy in force, with the rules attached to endpoints.</summary>
    public RateLimitPolicy Policy => Settings.Policy;

    internal GateSettings Settings => Volatile.Read(ref _settings);

    /// <summary>Puts <paramref name="options"/> in force for every request that starts from now on.</summary>
    /// <exception cref="ArgumentException">The options are invalid; the settings in force stay.</exception>
    public void Apply(FloodgateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        lock (_gate)
        {
            var settings = Compile(options, _endpointRules);
            Volatile.Write(ref _options, options);
            Volatile.Write(ref _settings, settings);
            Engine.UpdatePolicy(settings.Policy);
        }
    }

    /// <summary>Adds the rules attached to <paramref name="endpoints"/> with <c>WithFloodgateRule</c>. Done once, by the middleware.</summary>
    internal void AttachEndpoints(EndpointDataSource? endpoints)
    {
        // Read first: the exchange is a full fence, too dear for every request.
        if (endpoints is null || Volatile.Read(ref _endpointsAttached) != 0 || Interlocked.Exchange(ref _endpointsAttached, 1) != 0)
        {
            return;
        }

        var rules = new List<RateLimitRule>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var endpoint in endpoints.Endpoints)
        {
            if (endpoint is not RouteEndpoint route)
            {
                continue;
            }

            var template = HttpRequestContext.TemplateOf(route) ?? "/" + (route.RoutePattern.RawText ?? string.Empty).TrimStart('/');
            var methods = route.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [];
            foreach (var metadata in route.Metadata.GetOrderedMetadata<FloodgateRuleMetadata>())
            {
                var name = names.Add(metadata.Name) ? metadata.Name : $"{metadata.Name}:{string.Join(',', methods)} {template}";
                names.Add(name);
                rules.Add(metadata.ToRule(name, template, methods));
            }
        }

        if (rules.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            _endpointRules = rules;
            var settings = Compile(_options, rules);
            Volatile.Write(ref _settings, settings);
            Engine.UpdatePolicy(settings.Policy);
        }
    }

    private static GateSettings Compile(FloodgateOptions options, IReadOnlyList<RateLimitRule> endpointRules)
    {
        options.Validate();
        var policy = options.Policy;
        if (endpointRules.Count > 0)
        {
            policy = new RateLimitPolicy(policy.Rules.Concat(endpointRules))
            {
                ShadowAll = policy.ShadowAll,
                Ipv6PrefixLength = policy.Ipv6PrefixLength,
            };
        }

        var bans = new List<BanRule>();
        foreach (var rule in policy.RulesOf(RateLimitTier.Edge))
        {
            if (options.Bans.TryGetValue(rule.Name, out var duration))
            {
                var seconds = (int)Math.Ceiling(duration.TotalSeconds);
                bans.Add(new BanRule(rule, Limit.Gcra(new Rate(1, seconds, RateUnit.Second), 1), "ban:" + rule.Name));
            }
        }

        return new GateSettings(
            policy,
            new TrustedProxies(options.TrustedProxies),
            options.Anonymous,
            options.Headers.Ietf,
            options.Headers.Legacy,
            [.. bans],
            !policy.RulesOf(RateLimitTier.Edge).IsEmpty,
            options.SubjectClaim,
            options.PlanClaim);
    }
}

/// <summary>An edge rule's ban: a one-per-duration token bucket per client IP, spent when the IP goes over the rule.</summary>
internal sealed record BanRule(RateLimitRule Rule, Limit Limit, string Scope)
{
    public RateLimitCheck Check(StoreKey key, long cost) => new(Limit, key, cost, false);
}

/// <summary>The compiled settings in force.</summary>
internal sealed record GateSettings(
    RateLimitPolicy Policy,
    TrustedProxies Proxies,
    AnonymousPolicy Anonymous,
    bool IetfHeaders,
    bool LegacyHeaders,
    BanRule[] Bans,
    bool HasEdgeRules,
    string SubjectClaim,
    string PlanClaim);
