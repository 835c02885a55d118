using System.Globalization;
using System.Text;
using Floodgate.AspNetCore.RateLimitIds;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Gateway.Export;

/// <summary>Where the edge rules are exported to.</summary>
public enum ExportTarget
{
    /// <summary>Cloudflare rate limiting rules: a <c>cloudflare_ruleset</c> in phase <c>http_ratelimit</c>, as Terraform JSON.</summary>
    Cloudflare,

    /// <summary>AWS WAF rate-based rules: the <c>Rules</c> of a WebACL as JSON, or a CloudFormation template.</summary>
    AwsWaf,
}

/// <summary>The result of an export: the document, the approximations made (each naming its rule) and the rules refused.</summary>
/// <param name="Document">The exported text; empty when a rule was refused.</param>
/// <param name="Warnings">One line per approximation: the rule, the target, and how the exported rule differs.</param>
/// <param name="Errors">One line per rule that cannot be exported at all, naming it and why.</param>
public sealed record ExportResult(string Document, IReadOnlyList<string> Warnings, IReadOnlyList<string> Errors);

/// <summary>
/// One edge rule as the targets see it: what requests it counts (path, methods, hosts, headers, the rate-limit id's
/// presence), what it counts them by (the client IP, headers), how many per how long, the ban, and enforce or shadow.
/// Shared by the targets; each says what it can express of it (docs/edge.md).
/// </summary>
internal sealed class EdgeRuleShape
{
    public required RateLimitRule Rule { get; init; }

    public required long Amount { get; init; }

    public required long PeriodSeconds { get; init; }

    public TimeSpan? Ban { get; init; }

    public bool Shadow { get; init; }

    public bool KeysClientIp { get; init; }

    public IReadOnlyList<string> KeyHeaders { get; init; } = [];

    public required string RateLimitIdHeader { get; init; }

    /// <summary>The paths, each an exact path, a prefix (a pattern ending in <c>/**</c>), or a regular expression.</summary>
    public IReadOnlyList<PathCondition> Paths { get; init; } = [];

    public string Name => Rule.Name;

    public RuleMatch Match => Rule.Match;
}

/// <summary>How a path condition is matched.</summary>
internal enum PathKind
{
    Exact,
    Prefix,
    Regex,
}

/// <summary>One path condition, lower case (Floodgate matches paths ignoring case).</summary>
internal readonly record struct PathCondition(PathKind Kind, string Value);

/// <summary>Reads the edge rules of a policy into <see cref="EdgeRuleShape"/>s, refusing by name what no target can express.</summary>
internal static class EdgeExport
{
    /// <summary>Exports the edge rules of <paramref name="policy"/> to <paramref name="target"/>.</summary>
    /// <param name="policy">The policy.</param>
    /// <param name="target">The target.</param>
    /// <param name="cloudFormation">For AWS WAF: a CloudFormation template rather than the WebACL's rules.</param>
    /// <param name="allowLooser">Export a rule the target can only make looser than written (a limit below its minimum), with a warning, rather than refuse it.</param>
    public static ExportResult Export(GatewayPolicy policy, ExportTarget target, bool cloudFormation, bool allowLooser)
    {
        var warnings = new List<string>();
        var errors = new List<string>();
        var targetName = target == ExportTarget.Cloudflare ? "cloudflare" : "aws-waf";
        var shapes = new List<EdgeRuleShape>();
        foreach (var rule in policy.Floodgate.Policy.RulesOf(RateLimitTier.Edge))
        {
            if (Read(policy, rule, targetName, warnings, errors) is { } shape)
            {
                shapes.Add(shape);
            }
        }

        if (shapes.Count == 0 && errors.Count == 0)
        {
            errors.Add("the policy has no edge rules to export.");
        }

        if (errors.Count > 0)
        {
            return new ExportResult(string.Empty, warnings, errors);
        }

        var document = target == ExportTarget.Cloudflare
            ? CloudflareExport.Write(shapes, warnings, errors, allowLooser)
            : AwsWafExport.Write(shapes, warnings, errors, allowLooser, cloudFormation);
        return errors.Count > 0 ? new ExportResult(string.Empty, warnings, errors) : new ExportResult(document, warnings, errors);
    }

    /// <summary>A line naming the rule and the target, as every warning and error reads.</summary>
    public static string About(EdgeRuleShape rule, string target, string text) => About(rule.Name, target, text);

    private static string About(string rule, string target, string text) => $"rule '{rule}' ({target}): {text}";

    private static EdgeRuleShape? Read(GatewayPolicy policy, RateLimitRule rule, string target, List<string> warnings, List<string> errors)
    {
        if (rule.Limit is not { } limit)
        {
            errors.Add(About(rule.Name, target, "takes its limit from the plan, which the edge cannot know; only fixed limits export."));
            return null;
        }

        if (limit.Algorithm is LimitAlgorithm.Concurrency or LimitAlgorithm.Quota)
        {
            errors.Add(About(rule.Name, target, $"is a {(limit.Algorithm == LimitAlgorithm.Concurrency ? "concurrency limit (requests in flight)" : "calendar quota")}, which a WAF's request-rate rules cannot count; keep it in Floodgate."));
            return null;
        }

        if (rule.Cost != 1 || rule.Costs is not null)
        {
            errors.Add(About(rule.Name, target, "weighs requests (cost), and a WAF rate rule counts each request as one; keep it in Floodgate."));
            return null;
        }

        if (limit.Algorithm is LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket && limit.Burst != limit.Rate.Amount)
        {
            warnings.Add(About(rule.Name, target, $"burst {limit.Burst} is not a WAF notion: exported as {limit.Rate.Amount} requests per window, so up to that many may come at once, and no more than that burst's worth beyond the rate."));
        }

        var keysIp = false;
        var headers = new List<string>();
        foreach (var part in rule.Key)
        {
            switch (part.Kind)
            {
                case KeyPartKind.ClientIp:
                    keysIp = true;
                    break;
                case KeyPartKind.Header:
                    headers.Add(part.Name!.ToLowerInvariant());
                    break;
                default:
                    warnings.Add(About(rule.Name, target, $"the key part '{part}' has no counterpart: dropped, so requests that differ only in it share one count (stricter than the rule)."));
                    break;
            }
        }

        if (keysIp && policy.Floodgate.Policy.Ipv6PrefixLength < 128)
        {
            warnings.Add(About(rule.Name, target, $"IPv6 clients are counted per address, where Floodgate counts each /{policy.Floodgate.Policy.Ipv6PrefixLength} as one client: a client holding a whole /{policy.Floodgate.Policy.Ipv6PrefixLength} gets a budget per address (looser for IPv6)."));
        }

        if (rule.Match.Route is not null && rule.Match.Paths.Count > 0)
        {
            errors.Add(About(rule.Name, target, "matches both a route template and paths; give one of them."));
            return null;
        }

        var paths = new List<PathCondition>();
        foreach (var glob in rule.Match.Paths)
        {
            paths.Add(PathOf(glob.Pattern));
        }

        if (rule.Match.Route is { } route)
        {
            warnings.Add(About(rule.Name, target, $"the route template '{route.Template}' is exported as a path regular expression (constraints on its parameters are dropped, so it may match more paths)."));
            paths.Add(new PathCondition(PathKind.Regex, RouteRegex(route.Template)));
        }

        if (rule.Match.Condition is { } condition && condition != RateLimitIdConditions.Verified && condition != RateLimitIdConditions.Absent)
        {
            errors.Add(About(rule.Name, target, "carries a condition of its own, which cannot be exported."));
            return null;
        }

        var idHeader = policy.Floodgate.RateLimitId?.HeaderName.ToLowerInvariant() ?? RateLimitId.DefaultHeader;
        if (rule.Match.Condition is not null)
        {
            warnings.Add(About(rule.Name, target, $"match ratelimit_id: {(rule.Match.Condition == RateLimitIdConditions.Verified ? "verified" : "absent")} is exported as the {idHeader} header's {(rule.Match.Condition == RateLimitIdConditions.Verified ? "presence" : "absence")}: the WAF cannot check its tag, so a forged id counts as one (verify the id in a Worker or at the gateway, docs/edge.md)."));
        }

        return new EdgeRuleShape
        {
            Rule = rule,
            Amount = limit.Rate.Amount,
            PeriodSeconds = (long)Math.Ceiling(limit.Rate.Period.TotalSeconds),
            Ban = policy.Floodgate.Bans.TryGetValue(rule.Name, out var ban) ? ban : null,
            Shadow = rule.Mode == RuleMode.Shadow || policy.Floodgate.Policy.ShadowAll,
            KeysClientIp = keysIp,
            KeyHeaders = headers,
            RateLimitIdHeader = idHeader,
            Paths = paths,
        };
    }

    /// <summary>
    /// A period and a count the target offers for <paramref name="rule"/>: its own when the target has its period;
    /// otherwise the largest offered period not above it (the smallest when none is), with the count scaled down to it,
    /// rounded down, so the exported rule is never looser over time. A count below the target's minimum cannot be met
    /// safely: refused, or raised to the minimum with a warning under <paramref name="allowLooser"/>.
    /// </summary>
    public static (long Period, long Count)? Window(EdgeRuleShape rule, string target, long[] periods, long minimum, long maximum, bool allowLooser, List<string> warnings, List<string> errors)
    {
        var period = Array.IndexOf(periods, rule.PeriodSeconds) >= 0
            ? rule.PeriodSeconds
            : periods.Where(p => p <= rule.PeriodSeconds).DefaultIfEmpty(periods[0]).Max();
        var count = period == rule.PeriodSeconds ? rule.Amount : (long)Math.Floor((decimal)rule.Amount * period / rule.PeriodSeconds);
        if (period != rule.PeriodSeconds)
        {
            warnings.Add(About(rule, target, string.Create(CultureInfo.InvariantCulture, $"a period of {rule.PeriodSeconds} s is not offered (only {string.Join(", ", periods)} s): exported as {Math.Max(count, minimum)} per {period} s for {rule.Amount} per {rule.PeriodSeconds} s{(period > rule.PeriodSeconds ? ", so a burst of that many within the rule's own period is allowed" : string.Empty)}.")));
        }

        if (count > maximum)
        {
            errors.Add(About(rule, target, string.Create(CultureInfo.InvariantCulture, $"{count} per {period} s is above the most the target counts ({maximum}).")));
            return null;
        }

        if (count < minimum)
        {
            var text = string.Create(CultureInfo.InvariantCulture, $"{rule.Amount} per {rule.PeriodSeconds} s is below the least the target can limit to ({minimum} per {period} s)");
            if (!allowLooser)
            {
                errors.Add(About(rule, target, text + "; it cannot be exported without making it looser (pass --allow-looser to export it at the minimum)."));
                return null;
            }

            warnings.Add(About(rule, target, text + string.Create(CultureInfo.InvariantCulture, $": exported at {minimum} per {period} s, LOOSER than the rule.")));
            count = minimum;
        }

        return (period, count);
    }

    private static PathCondition PathOf(string pattern)
    {
        var lower = pattern.ToLowerInvariant().TrimEnd('/');
        if (lower.Length == 0)
        {
            lower = "/";
        }

        if (lower.IndexOfAny(['*', '?']) < 0)
        {
            return new PathCondition(PathKind.Exact, lower);
        }

        if (lower.EndsWith("/**", StringComparison.Ordinal) && lower[..^3].IndexOfAny(['*', '?']) < 0)
        {
            return new PathCondition(PathKind.Prefix, lower[..^3]);
        }

        var regex = new StringBuilder("^");
        var segments = lower.Split('/');
        for (var i = 1; i < segments.Length; i++)
        {
            if (segments[i] == "**")
            {
                regex.Append("(/.*)?");
                continue;
            }

            regex.Append('/');
            foreach (var c in segments[i])
            {
                regex.Append(c switch { '*' => "[^/]*", '?' => "[^/]", _ => Literal(c) });
            }
        }

        return new PathCondition(PathKind.Regex, regex.Append("/?$").ToString());
    }

    private static string RouteRegex(string template)
    {
        var regex = new StringBuilder("^");
        foreach (var segment in template.ToLowerInvariant().Trim('/').Split('/'))
        {
            regex.Append('/');
            if (segment.StartsWith("{*", StringComparison.Ordinal))
            {
                regex.Append(".*");
                continue;
            }

            var at = 0;
            while (at < segment.Length)
            {
                if (segment[at] == '{')
                {
                    var end = segment.IndexOf('}', at);
                    regex.Append("[^/]+");
                    at = end < 0 ? segment.Length : end + 1;
                    continue;
                }

                regex.Append(Literal(segment[at++]));
            }
        }

        return regex.Append("/?$").ToString();
    }

    /// <summary>A path character as a regular expression, without backslashes (a character class for the special ones), so it needs no escaping in the target's strings.</summary>
    private static string Literal(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '~' or '/' or '%' or '@' or ':' or ',' or ';' or '=' or '!' or '\'' or '&'
        ? c.ToString()
        : c == '^' ? "\\^" : $"[{c}]";
}
