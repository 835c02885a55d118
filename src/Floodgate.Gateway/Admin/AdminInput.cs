using Floodgate.Gateway.Policy;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Floodgate.Gateway.Admin;

/// <summary>Checks of what admin requests carry, each failing with the 400 that names the field.</summary>
internal static class AdminInput
{
    /// <summary>The subject named in a route, unescaped (a subject may hold a '/'); a 400 when empty or too long.</summary>
    public static string? Subject(string raw, out ValidationProblem? problem)
    {
        var subject = Uri.UnescapeDataString(raw);
        problem = subject.Length == 0 ? AdminProblems.BadField("subject", "is empty.")
            : subject.Length > RateLimitOverride.MaxSubjectLength ? AdminProblems.BadField("subject", $"is {subject.Length} characters; at most {RateLimitOverride.MaxSubjectLength}.")
            : null;
        return problem is null ? subject : null;
    }

    /// <summary>The plans the policy's rules name.</summary>
    public static IReadOnlySet<string> Plans(GatewayPolicy policy)
    {
        var plans = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var rule in policy.Floodgate.Policy.Rules)
        {
            if (rule.PlanLimits is { } limits)
            {
                plans.UnionWith(limits.Keys);
            }
        }

        return plans;
    }

    /// <summary>A 400 unless <paramref name="plan"/> is one of the policy's plans.</summary>
    public static ValidationProblem? CheckPlan(GatewayPolicy policy, string field, string plan)
    {
        var plans = Plans(policy);
        return plans.Contains(plan) ? null
            : AdminProblems.BadField(field, plans.Count == 0 ? $"'{plan}' is not a plan: the policy has no plan limits." : $"'{plan}' is not a plan; the plans are: {string.Join(", ", plans)}.");
    }

    /// <summary>Rule names and rates, each rule one of the policy's and each rate one its algorithm takes; a 400 naming the first at fault.</summary>
    public static Dictionary<string, Rate>? Rates(GatewayPolicy policy, IReadOnlyDictionary<string, string>? given, out ValidationProblem? problem)
    {
        problem = null;
        var rates = new Dictionary<string, Rate>(StringComparer.Ordinal);
        foreach (var (name, text) in given ?? new Dictionary<string, string>())
        {
            var field = $"rates.{name}";
            if (Rule(policy, name) is not { } rule)
            {
                problem = AdminProblems.BadField(field, $"'{name}' is not a rule; the rules are: {string.Join(", ", policy.Floodgate.Policy.Rules.Select(r => r.Name))}.");
                return null;
            }

            if (!Rate.TryParse(text, out var rate, out var error))
            {
                problem = AdminProblems.BadField(field, error);
                return null;
            }

            var basis = rule.LimitFor(null) ?? rule.PlanLimits!.Values.First();
            try
            {
                _ = basis.WithRate(rate);
            }
            catch (ArgumentException e)
            {
                problem = AdminProblems.BadField(field, PolicyLoader.MessageOf(e));
                return null;
            }

            rates[name] = rate;
        }

        return rates;
    }

    /// <summary>When something given a time to live lapses; <see langword="null"/> for never; a 400 for a TTL that is not a positive duration.</summary>
    public static DateTimeOffset? ExpiresAt(string? ttl, TimeProvider time, string field, out ValidationProblem? problem)
    {
        problem = null;
        if (ttl is null)
        {
            return null;
        }

        if (ttl.TrimStart().StartsWith('-'))
        {
            problem = AdminProblems.BadField(field, $"'{ttl}' is negative; give a duration such as 30s, 15m, 12h or 7d.");
            return null;
        }

        if (!YamlReader.TryParseDuration(ttl, out var span) || span <= TimeSpan.Zero || span > TimeSpan.FromDays(3650))
        {
            problem = AdminProblems.BadField(field, $"'{ttl}' is not a duration such as 30s, 15m, 12h or 7d (up to 3650d).");
            return null;
        }

        return time.GetUtcNow() + span;
    }

    /// <summary>The policy's rule named <paramref name="name"/>, or <see langword="null"/>.</summary>
    public static RateLimitRule? Rule(GatewayPolicy policy, string name) =>
        policy.Floodgate.Policy.Rules.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.Ordinal));
}
