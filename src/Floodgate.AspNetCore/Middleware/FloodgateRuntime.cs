using Floodgate.AspNetCore.Endpoints;
using Floodgate.AspNetCore.Http;
using Floodgate.AspNetCore.Policies;
using Floodgate.AspNetCore.Rejections;
using Floodgate.Engine;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Middleware;

/// <summary>
/// What the middleware runs on: the engine, and the settings in force, compiled from the options and the rules attached
/// to the app's endpoints. <see cref="Apply"/> swaps the settings atomically (a hot reload), as endpoints that change do;
/// a request in flight finishes on the settings it started with.
/// </summary>
public sealed class FloodgateRuntime
{
    // Guards compiling and swapping the settings (a reload, the endpoints attached), so one swap never undoes another.
    private readonly Lock _settingsLock = new();
    private CompiledSettings _settings;
    private FloodgateOptions _options;
    private IReadOnlyList<EndpointRule> _endpointRules = [];
    private IDisposable? _endpointChanges;
    private bool _endpointsAttached;
    private Exception? _attachFailure;
    private EndpointDataSource? _endpointSource;

    /// <summary>Creates the runtime with the options' settings in force.</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public FloodgateRuntime(RateLimitEngine engine, IOptions<FloodgateOptions> options)
        : this(engine, options, TimeProvider.System)
    {
    }

    /// <summary>Creates the runtime with the options' settings in force, its adaptive limits on <paramref name="time"/>.</summary>
    /// <param name="engine">The engine.</param>
    /// <param name="options">The options.</param>
    /// <param name="time">The clock of the adaptive concurrency limits (the engine's).</param>
    /// <param name="loggers">Where the adaptive limits log their changes; none by default.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public FloodgateRuntime(RateLimitEngine engine, IOptions<FloodgateOptions> options, TimeProvider time, Microsoft.Extensions.Logging.ILoggerFactory? loggers = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        Engine = engine;
        _options = options.Value;
        _settings = Compile(_options, []);
        engine.UpdatePolicy(_settings.Policy);
        Adaptive = new Floodgate.Adaptive.AdaptiveLimiterSet(time, loggers?.CreateLogger("Floodgate.Adaptive"));
        Adaptive.Update(_options.AdaptiveRules);
    }

    /// <summary>
    /// The adaptive concurrency limits in force, one per rule of <see cref="FloodgateOptions.AdaptiveRules"/>: what each
    /// has learned (<see cref="Floodgate.Adaptive.AdaptiveLimiterSet.Snapshot"/>) is what the dashboard shows.
    /// </summary>
    public Floodgate.Adaptive.AdaptiveLimiterSet Adaptive { get; }

    /// <summary>The engine.</summary>
    public RateLimitEngine Engine { get; }

    /// <summary>The options in force.</summary>
    public FloodgateOptions Options => Volatile.Read(ref _options);

    /// <summary>The policy in force, with the rules attached to endpoints.</summary>
    public RateLimitPolicy Policy => Settings.Policy;

    /// <summary>
    /// The trusted proxies in force, parsed from the options: a proxy in front of the middleware (such as the gateway)
    /// forwards only what they vouch for.
    /// </summary>
    public TrustedProxies TrustedProxies => Settings.Proxies;

    internal CompiledSettings Settings => Volatile.Read(ref _settings);

    /// <summary>
    /// The store check of the ban the edge rule <paramref name="rule"/> starts on <paramref name="client"/> (an address,
    /// or an IPv6 client's network, as <see cref="Keys.ClientAddress.Name"/> writes it): what lifting that ban resets.
    /// <see langword="null"/> when the rule has no ban in force.
    /// </summary>
    public RateLimitCheck? BanCheck(string rule, string client)
    {
        foreach (var ban in Settings.Bans)
        {
            if (string.Equals(ban.Rule.Name, rule, StringComparison.Ordinal))
            {
                return ban.Check(StoreKey.Create(ban.Scope, client), 1);
            }
        }

        return null;
    }

    /// <summary>Puts <paramref name="options"/> in force for every request that starts from now on.</summary>
    /// <exception cref="ArgumentException">The options are invalid; the settings in force stay.</exception>
    public void Apply(FloodgateOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        lock (_settingsLock)
        {
            // A reload that drops a policy an endpoint requires is refused: that endpoint would go unlimited.
            NamedPolicies.CheckRequired(NamedPolicies.Of(_endpointSource), options);
            var settings = Compile(options, _endpointRules);
            Volatile.Write(ref _options, options);
            Volatile.Write(ref _settings, settings);
            Engine.UpdatePolicy(settings.Policy);
            Adaptive.Update(options.AdaptiveRules);

            // The endpoint rules may fit the new options where they did not fit the old (a policy rule renamed): the
            // next request tries them again.
            _attachFailure = null;
        }
    }

    /// <summary>
    /// Adds the rules attached to <paramref name="endpoints"/> with <c>WithFloodgateRule</c> before the first request is
    /// decided, and again before the first request after the endpoints change: requests that arrive meanwhile wait, and
    /// none is decided without them.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// The rules cannot be added (two of them would have one name); every request gets the same exception until a
    /// reload (<see cref="Apply"/>) makes them fit, as no request may go without the limits of its endpoint.
    /// </exception>
    internal void AttachEndpoints(EndpointDataSource? endpoints)
    {
        // A plain read: the lock is too dear for every request, and the flag is set only once the rules are in force.
        if (endpoints is null || Volatile.Read(ref _endpointsAttached))
        {
            return;
        }

        AttachEndpointsOnce(endpoints);
    }

    private void AttachEndpointsOnce(EndpointDataSource endpoints)
    {
        lock (_settingsLock)
        {
            if (_endpointsAttached)
            {
                return;
            }

            if (_attachFailure is null)
            {
                try
                {
                    // Taken before the endpoints are read, so that a change while they are read is not missed.
                    var changes = endpoints.GetChangeToken();
                    var read = endpoints.Endpoints;
                    NamedPolicies.CheckRequired(read, _options);
                    var rules = EndpointRules(read);
                    if (rules.Count > 0 || _endpointRules.Count > 0)
                    {
                        // Compiled first: the settings change only once every endpoint rule compiles with the options.
                        var settings = Compile(_options, rules);
                        _endpointRules = rules;
                        Volatile.Write(ref _settings, settings);
                        Engine.UpdatePolicy(settings.Policy);
                    }

                    _endpointSource = endpoints;
                    Volatile.Write(ref _endpointsAttached, true);

                    // Endpoints can change after the first request (a dynamic data source, an in-app proxy's routes): the
                    // request after a change attaches them again. Rules that stay keep their names, so their budgets.
                    _endpointChanges?.Dispose();
                    _endpointChanges = changes.RegisterChangeCallback(static runtime => Volatile.Write(ref ((FloodgateRuntime)runtime!)._endpointsAttached, false), this);
                    return;
                }
                catch (ArgumentException e)
                {
                    // Deterministic: trying again would fail again, so every request gets the same answer.
                    _attachFailure = e;
                }
            }

            throw new InvalidOperationException(
                $"Floodgate cannot apply the rules attached to the app's endpoints, so it decides no request: {_attachFailure.Message}", _attachFailure);
        }
    }

    /// <summary>
    /// One rule per endpoint and metadata: a group's metadata (<c>MapGroup(...).WithFloodgateRule</c>) is on each of the
    /// group's endpoints, and each has a budget of its own. Endpoints that routing cannot tell apart (same pattern,
    /// methods and hosts) carrying the same metadata share one rule.
    /// </summary>
    private static List<EndpointRule> EndpointRules(IReadOnlyList<Endpoint> endpoints)
    {
        var rules = new List<EndpointRule>();
        foreach (var endpoint in endpoints)
        {
            if (endpoint is not RouteEndpoint route)
            {
                continue;
            }

            var template = HttpRequestContext.TemplateOf(route) ?? "/" + (route.RoutePattern.RawText ?? string.Empty).TrimStart('/');
            var methods = route.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [];
            foreach (var metadata in route.Metadata.GetOrderedMetadata<FloodgateRuleMetadata>())
            {
                var match = new EndpointMatch(metadata, route);
                if (!rules.Exists(r => r.Match.IsSameEndpoint(match)))
                {
                    rules.Add(new EndpointRule(metadata, template, methods, route.Metadata.GetMetadata<IHostMetadata>()?.Hosts ?? [], match));
                }
            }
        }

        return rules;
    }

    /// <summary>
    /// A generated rule name as the headers can carry it: a template or host may hold what a rule name may not (a
    /// backslash in a regex constraint, a quote, non-ASCII text), and those are percent-encoded as UTF-8.
    /// </summary>
    internal static string HeaderSafe(string name)
    {
        if (FloodgateOptions.IsValidRuleName(name))
        {
            return name;
        }

        var text = new System.Text.StringBuilder(name.Length + 16);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in name.EnumerateRunes())
        {
            if (rune.Value is >= 0x20 and <= 0x7E and not '"' and not '\\' and not '%')
            {
                text.Append((char)rune.Value);
                continue;
            }

            var length = rune.EncodeToUtf8(utf8);
            foreach (var b in utf8[..length])
            {
                text.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return text.ToString();
    }

    private static CompiledSettings Compile(FloodgateOptions options, IReadOnlyList<EndpointRule> endpointRules)
    {
        options.Validate();
        var policy = options.Policy;
        if (options.Policies.Count > 0)
        {
            policy = new RateLimitPolicy(policy.Rules.Concat(options.Policies.Values))
            {
                ShadowAll = policy.ShadowAll,
                Ipv6PrefixLength = policy.Ipv6PrefixLength,
            };
        }

        if (endpointRules.Count > 0)
        {
            // An endpoint rule keeps its name unless a policy rule or an earlier endpoint rule has it; then it is named
            // after its endpoint too, "name:METHODS /template" ("name:METHODS host/template" for an endpoint that requires
            // hosts), deterministically.
            var names = new HashSet<string>(policy.Rules.Select(r => r.Name), StringComparer.OrdinalIgnoreCase);
            var rules = new List<RateLimitRule>(endpointRules.Count);
            foreach (var (metadata, template, methods, hosts, match) in endpointRules)
            {
                var name = metadata.Name;
                if (!names.Add(name))
                {
                    name = HeaderSafe($"{metadata.Name}:{string.Join(',', methods)} {string.Join(',', hosts)}{template}");
                    if (!names.Add(name))
                    {
                        throw new ArgumentException($"The rule '{metadata.Name}' attached to the endpoint {string.Join(',', methods)} {template} has the name of another rule; give it a name of its own.", nameof(endpointRules));
                    }
                }

                rules.Add(metadata.ToRule(name, template, methods, match.IsMatch));
            }

            policy = new RateLimitPolicy(policy.Rules.Concat(rules))
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
                bans.Add(new BanRule(rule, Limit.Gcra(new Rate(1, seconds, RateUnit.Second), 1), "ban:" + rule.Name, TimeSpan.FromSeconds(seconds)));
            }
        }

        var settings = new CompiledSettings(
            policy,
            new TrustedProxies(options.TrustedProxies, options.ForwardedHeader),
            options.Anonymous,
            options.Headers.Ietf,
            options.Headers.Legacy,
            options.Headers.LegacyReset,
            [.. bans],
            !policy.RulesOf(RateLimitTier.Edge).IsEmpty,
            EdgeReadsIdentity(policy),
            options.SubjectClaim,
            options.PlanClaim,
            RejectionSettings.Of(options),
            RateLimitIds: options.RateLimitId is { } ids ? new RateLimitIds.RateLimitIdVerifier(ids) : null);
        return Access.AccessControl.Compile(options.Access, settings) is { } access ? settings with { Access = access } : settings;
    }

    /// <summary>
    /// Whether an edge rule keys on, or takes its limit from, the identity (a subject, claim or plan). The gateway's
    /// policy refuses such rules; an application's policy may have them, and the middleware then always evaluates the
    /// edge before resolving identity, so that such a rule never sees an identity, whatever the request.
    /// </summary>
    private static bool EdgeReadsIdentity(RateLimitPolicy policy)
    {
        foreach (var rule in policy.RulesOf(RateLimitTier.Edge))
        {
            if (rule.PlanLimits is not null || rule.Key.Any(part => part.Kind is KeyPartKind.Subject or KeyPartKind.Claim or KeyPartKind.Plan))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>A rule attached to an endpoint, and the endpoint.</summary>
internal sealed record EndpointRule(FloodgateRuleMetadata Metadata, string Template, IReadOnlyList<string> Methods, IReadOnlyList<string> Hosts, EndpointMatch Match);

/// <summary>
/// Whether routing matched a request to an endpoint that carries <paramref name="metadata"/>, the one <paramref name="endpoint"/>
/// describes: same route pattern, methods and hosts. Endpoints are compared by these, not by reference, because routing
/// builds its own instances of the endpoints (the metadata a convention added is the same instance in each).
/// </summary>
internal sealed class EndpointMatch(FloodgateRuleMetadata metadata, RouteEndpoint endpoint)
{
    private readonly FloodgateRuleMetadata _metadata = metadata;
    private readonly string? _pattern = endpoint.RoutePattern.RawText;
    private readonly IReadOnlyList<string> _methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? [];
    private readonly IReadOnlyList<string> _hosts = endpoint.Metadata.GetMetadata<IHostMetadata>()?.Hosts ?? [];

    /// <summary>Whether <paramref name="request"/> was routed to the endpoint.</summary>
    public bool IsMatch(IRequestContext request) =>
        request is HttpRequestContext { Endpoint: RouteEndpoint routed } && Describes(routed);

    /// <summary>Whether <paramref name="other"/> is the same metadata on an endpoint routing cannot tell from this one.</summary>
    public bool IsSameEndpoint(EndpointMatch other) =>
        ReferenceEquals(_metadata, other._metadata) && string.Equals(_pattern, other._pattern, StringComparison.Ordinal)
        && SameItems(_methods, other._methods) && SameItems(_hosts, other._hosts);

    private bool Describes(RouteEndpoint routed)
    {
        if (!string.Equals(routed.RoutePattern.RawText, _pattern, StringComparison.Ordinal))
        {
            return false;
        }

        var items = routed.Metadata;
        for (var i = 0; i < items.Count; i++)
        {
            if (ReferenceEquals(items[i], _metadata))
            {
                return SameItems(items.GetMetadata<IHttpMethodMetadata>()?.HttpMethods, _methods)
                    && SameItems(items.GetMetadata<IHostMetadata>()?.Hosts, _hosts);
            }
        }

        return false;
    }

    private static bool SameItems(IReadOnlyList<string>? values, IReadOnlyList<string> expected)
    {
        var count = values?.Count ?? 0;
        if (count != expected.Count)
        {
            return false;
        }

        for (var i = 0; i < count; i++)
        {
            if (!string.Equals(values![i], expected[i], StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>An edge rule's ban: a one-per-duration token bucket per client IP, spent when the IP goes over the rule, for <c>Duration</c>.</summary>
internal sealed record BanRule(RateLimitRule Rule, Limit Limit, string Scope, TimeSpan Duration)
{
    public RateLimitCheck Check(StoreKey key, long cost) => new(Limit, key, cost, false);
}

/// <summary>The compiled settings in force.</summary>
internal sealed record CompiledSettings(
    RateLimitPolicy Policy,
    TrustedProxies Proxies,
    AnonymousPolicy Anonymous,
    bool IetfHeaders,
    bool LegacyHeaders,
    RateLimitResetFormat LegacyReset,
    BanRule[] Bans,
    bool HasEdgeRules,
    bool EdgeReadsIdentity,
    string SubjectClaim,
    string PlanClaim,
    RejectionSettings Rejections,
    Access.AccessControl? Access = null,
    RateLimitIds.RateLimitIdVerifier? RateLimitIds = null);
