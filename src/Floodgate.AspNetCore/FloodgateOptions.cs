using System.Collections.ObjectModel;
using Floodgate.AspNetCore.Policies;
using Floodgate.AspNetCore.Rejections;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.AspNetCore;

/// <summary>What happens to a request that carries no credentials.</summary>
public enum AnonymousPolicy
{
    /// <summary>It goes on, and the user tier keys it by client IP in place of a subject.</summary>
    Allow,

    /// <summary>It is answered 401 with <c>WWW-Authenticate: Bearer</c>.</summary>
    Reject,
}

/// <summary>Options of the Floodgate middleware.</summary>
public sealed class FloodgateOptions
{
    private readonly Dictionary<string, RateLimitRule> _policies = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Creates the options.</summary>
    public FloodgateOptions() => Policies = new ReadOnlyDictionary<string, RateLimitRule>(_policies);

    /// <summary>
    /// The named policies, by name: each applies to the endpoints that require it (<c>RequireFloodgate("name")</c>,
    /// <see cref="EnableFloodgateAttribute"/>), with one budget however many endpoints do.
    /// </summary>
    public IReadOnlyDictionary<string, RateLimitRule> Policies { get; }

    /// <summary>
    /// Registers the named policy <paramref name="name"/>: a rule that applies to the requests routed to an endpoint
    /// that requires it, one budget for all of them. Keyed as its tier is (user: per subject; edge: per client IP),
    /// except that a service-tier policy is keyed on itself alone: one capacity for the endpoints that share it.
    /// </summary>
    /// <param name="name">The policy's name, also its rule's name in headers, logs and metrics.</param>
    /// <param name="limit">The limit, such as <c>Limit.Gcra(Rate.Parse("300/min"), burst: 50)</c>.</param>
    /// <param name="tier">The tier; default <see cref="RateLimitTier.Service"/> (answered 503).</param>
    /// <param name="key">The key; default as above.</param>
    /// <param name="cost">What one request costs.</param>
    /// <param name="mode">Enforce or shadow.</param>
    /// <returns>These options.</returns>
    /// <exception cref="ArgumentException">The name is not a valid rule name, or a policy has it already.</exception>
    public FloodgateOptions AddPolicy(string name, Limit limit, RateLimitTier tier = RateLimitTier.Service, IReadOnlyList<KeyPart>? key = null, long cost = 1, RuleMode mode = RuleMode.Enforce)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(limit);
        if (!IsValidRuleName(name))
        {
            throw new ArgumentException(RuleNameProblem(name), nameof(name));
        }

        if (_policies.ContainsKey(name))
        {
            throw new ArgumentException($"A Floodgate policy named '{name}' is already registered.", nameof(name));
        }

        _policies.Add(name, NamedPolicies.Rule(name, limit, tier, key, cost, mode));
        return this;
    }

    /// <summary>Registers the named policy <paramref name="name"/>: a token bucket of <paramref name="rate"/>, such as <c>300/min</c>.</summary>
    /// <exception cref="FormatException">The rate is malformed.</exception>
    /// <returns>These options.</returns>
    public FloodgateOptions AddPolicy(string name, string rate, RateLimitTier tier = RateLimitTier.Service) =>
        AddPolicy(name, Limit.Gcra(Rate.Parse(rate)), tier);

    /// <summary>
    /// Writes the body of a rejection (429, 503, or the tier's <see cref="RejectionStatusCodes"/>) in place of
    /// Floodgate's problem details. When it is called the status code, <c>Retry-After</c> and limit headers are set; it
    /// may change them. Default: none (problem details, through <c>IProblemDetailsService</c> when one is registered).
    /// </summary>
    public Func<FloodgateRejectedContext, CancellationToken, ValueTask>? OnRejected { get; set; }

    /// <summary>
    /// The status code of each tier's rejections, in place of the default (429 for edge and user, 503 for service and
    /// global). A denial because the store cannot be reached (a closed failure mode) stays 503 whatever is set here.
    /// </summary>
    public IDictionary<RateLimitTier, int> RejectionStatusCodes { get; } = new Dictionary<RateLimitTier, int>();

    /// <summary>Problems found reading configuration, each naming its path; reported by <see cref="Validate"/>.</summary>
    internal List<string> ConfigurationProblems { get; } = [];

    /// <summary>The rules. Rules attached to endpoints with <c>WithFloodgateRule</c> are added to them.</summary>
    public RateLimitPolicy Policy { get; set; } = RateLimitPolicy.Empty;

    /// <summary>
    /// The adaptive concurrency limits (docs/adaptive-concurrency.md): each learns, per replica, how many requests its
    /// endpoints take at once from their latency, and applies beside the rules of <see cref="Policy"/> (a rule of the
    /// same name, such as a fixed concurrency limit, applies too).
    /// </summary>
    public IReadOnlyList<Floodgate.Adaptive.AdaptiveConcurrencyRule> AdaptiveRules { get; set; } = [];

    /// <summary>CIDR ranges (or addresses) of the proxies whose forwarding header (<see cref="ForwardedHeader"/>) is believed.</summary>
    public IList<string> TrustedProxies { get; } = [];

    /// <summary>
    /// The one forwarding header the trusted proxies write; the other is never read, since proxies pass a client's copy
    /// through. Default <see cref="Http.ForwardedHeader.XForwardedFor"/>.
    /// </summary>
    public Http.ForwardedHeader ForwardedHeader { get; set; } = Http.ForwardedHeader.XForwardedFor;

    /// <summary>What happens to requests without credentials. Default: <see cref="AnonymousPolicy.Allow"/>.</summary>
    public AnonymousPolicy Anonymous { get; set; } = AnonymousPolicy.Allow;

    /// <summary>
    /// Mitigation timeouts of edge rules, by rule name: once a client IP goes over the rule, every request from it is
    /// rejected for this long, without being counted.
    /// </summary>
    public IDictionary<string, TimeSpan> Bans { get; } = new Dictionary<string, TimeSpan>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Which limit headers responses carry.</summary>
    public RateLimitHeaderOptions Headers { get; set; } = new();

    /// <summary>Bypass rules for the operator's own services, and deny lists of addresses and subjects (docs/edge.md).</summary>
    public Access.AccessOptions Access { get; set; } = new();

    /// <summary>The verifiable rate-limit id: issued, verified before the edge tier, bound to the subject (docs/edge.md); off when <see langword="null"/>, the default.</summary>
    public RateLimitIds.RateLimitIdOptions? RateLimitId { get; set; }

    /// <summary>The claim that names the subject when the application authenticated the request itself. Default <c>sub</c>.</summary>
    public string SubjectClaim { get; set; } = "sub";

    /// <summary>The claim that names the plan when the application authenticated the request itself. Default <c>plan</c>.</summary>
    public string PlanClaim { get; set; } = "plan";

    /// <summary>
    /// Whether <paramref name="name"/> can name a rule: one or more printable ASCII characters (0x20 to 0x7E) other than
    /// <c>"</c> and <c>\</c>, since the name is sent in the <c>RateLimit</c> and <c>RateLimit-Policy</c> headers.
    /// </summary>
    public static bool IsValidRuleName(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (c < 0x20 || c > 0x7E || c == '"' || c == '\\')
            {
                return false;
            }
        }

        return true;
    }

    internal static string RuleNameProblem(string name) =>
        $"'{name}' is not a valid rule name: it is sent in the RateLimit and RateLimit-Policy headers, so use printable ASCII (0x20 to 0x7E) without '\"' or '\\'.";

    /// <summary>Throws when an option is invalid, with a message naming it.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        if (ConfigurationProblems.Count > 0)
        {
            throw new ArgumentException(string.Join(Environment.NewLine, ConfigurationProblems), nameof(Policy));
        }

        if (Policy is null)
        {
            throw new ArgumentException("FloodgateOptions.Policy must be set.", nameof(Policy));
        }

        foreach (var rule in Policy.Rules)
        {
            if (!IsValidRuleName(rule.Name))
            {
                throw new ArgumentException($"FloodgateOptions.Policy: {RuleNameProblem(rule.Name)}", nameof(Policy));
            }
        }

        ArgumentNullException.ThrowIfNull(AdaptiveRules);
        var adaptive = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var rule in AdaptiveRules)
        {
            ArgumentNullException.ThrowIfNull(rule, nameof(AdaptiveRules));
            if (!IsValidRuleName(rule.Name) || !adaptive.Add(rule.Name))
            {
                throw new ArgumentException($"FloodgateOptions.AdaptiveRules: {(adaptive.Contains(rule.Name) ? $"two adaptive rules are named '{rule.Name}'" : RuleNameProblem(rule.Name))}.", nameof(AdaptiveRules));
            }
        }

        if (!Enum.IsDefined(Anonymous))
        {
            throw new ArgumentException($"FloodgateOptions.Anonymous has the unknown value {Anonymous}.", nameof(Anonymous));
        }

        if (!Enum.IsDefined(ForwardedHeader))
        {
            throw new ArgumentException($"FloodgateOptions.ForwardedHeader has the unknown value {ForwardedHeader}.", nameof(ForwardedHeader));
        }

        foreach (var range in TrustedProxies)
        {
            try
            {
                Http.TrustedProxies.ParseRange(range);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"FloodgateOptions.TrustedProxies: {e.Message}", nameof(TrustedProxies), e);
            }
        }

        foreach (var (name, duration) in Bans)
        {
            var rule = Policy.Rules.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.OrdinalIgnoreCase));
            if (rule is null || rule.Tier != RateLimitTier.Edge)
            {
                throw new ArgumentException($"FloodgateOptions.Bans: '{name}' is not an edge rule of the policy; only edge rules can ban.", nameof(Bans));
            }

            if (duration < TimeSpan.FromSeconds(1) || duration > TimeSpan.FromDays(365))
            {
                throw new ArgumentException($"FloodgateOptions.Bans: the ban of '{name}' must be between 1 second and 365 days, not {duration}.", nameof(Bans));
            }
        }

        foreach (var rule in Policy.Rules)
        {
            if (_policies.ContainsKey(rule.Name))
            {
                throw new ArgumentException($"FloodgateOptions.Policies: '{rule.Name}' names both a policy and a rule of FloodgateOptions.Policy; give each its own name.", nameof(Policy));
            }
        }

        foreach (var (tier, status) in RejectionStatusCodes)
        {
            if (!Enum.IsDefined(tier) || status is < 400 or > 599)
            {
                throw new ArgumentException($"FloodgateOptions.RejectionStatusCodes: {tier} must be answered with a 4xx or 5xx status code, not {status}.", nameof(RejectionStatusCodes));
            }
        }

        ArgumentNullException.ThrowIfNull(Headers);
        if (!Enum.IsDefined(Headers.LegacyReset))
        {
            throw new ArgumentException($"FloodgateOptions.Headers.LegacyReset: {Headers.LegacyReset} is not a reset format.", nameof(Headers));
        }

        ArgumentNullException.ThrowIfNull(Access);
        Access.Validate();
        RateLimitId?.Validate();
        ArgumentException.ThrowIfNullOrWhiteSpace(SubjectClaim);
        ArgumentException.ThrowIfNullOrWhiteSpace(PlanClaim);
    }
}

/// <summary>Which limit headers responses carry.</summary>
public sealed class RateLimitHeaderOptions
{
    /// <summary>
    /// The IETF fields of draft-ietf-httpapi-ratelimit-headers-10: <c>RateLimit-Policy: "name";q=100;w=60</c> and
    /// <c>RateLimit: "name";r=42;t=17</c>. Default on.
    /// </summary>
    public bool Ietf { get; set; } = true;

    /// <summary>The <c>X-RateLimit-Limit</c>, <c>X-RateLimit-Remaining</c> and <c>X-RateLimit-Reset</c> convention. Default off.</summary>
    public bool Legacy { get; set; }

    /// <summary>
    /// How <c>X-RateLimit-Reset</c> tells the reset: seconds from now (the default, as the IETF fields' <c>t</c>), or
    /// the Unix time in seconds (GitHub's convention). Only with <see cref="Legacy"/>.
    /// </summary>
    public RateLimitResetFormat LegacyReset { get; set; } = RateLimitResetFormat.DeltaSeconds;
}

/// <summary>How <c>X-RateLimit-Reset</c> tells when the limit is fully available again.</summary>
public enum RateLimitResetFormat
{
    /// <summary>Whole seconds from now, rounded up: <c>X-RateLimit-Reset: 60</c>.</summary>
    DeltaSeconds,

    /// <summary>The Unix time in whole seconds, rounded up, as GitHub's API sends it: <c>X-RateLimit-Reset: 1796551260</c>.</summary>
    UnixSeconds,
}
