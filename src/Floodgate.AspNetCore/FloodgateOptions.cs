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
    /// <summary>The rules. Rules attached to endpoints with <c>WithFloodgateRule</c> are added to them.</summary>
    public RateLimitPolicy Policy { get; set; } = RateLimitPolicy.Empty;

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

        ArgumentNullException.ThrowIfNull(Headers);
        if (!Enum.IsDefined(Headers.LegacyReset))
        {
            throw new ArgumentException($"FloodgateOptions.Headers.LegacyReset: {Headers.LegacyReset} is not a reset format.", nameof(Headers));
        }

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
