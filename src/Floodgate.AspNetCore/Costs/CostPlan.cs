using Floodgate.Costs;
using Floodgate.Rules;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// What a policy's cost rules need of a request and its response, worked out once per policy: the body fields to read
/// before the decision, the response headers and trailers that carry a cost, and whether any rule reads usage from the
/// body. A policy without cost rules has no plan, and its requests pay one reference comparison.
/// </summary>
internal sealed class CostPlan
{
    private static (RateLimitPolicy? Policy, CostPlan? Plan) s_last;

    private CostPlan(RateLimitRule[] fieldRules, string[] fields, string[] headers, bool readsBody, int maxBodyBytes)
    {
        FieldRules = fieldRules;
        Fields = fields;
        Headers = headers;
        ReadsBody = readsBody;
        MaxBodyBytes = maxBodyBytes;
    }

    /// <summary>The rules whose reservation reads the request body, or whose money is priced by a body field.</summary>
    public RateLimitRule[] FieldRules { get; }

    /// <summary>The top-level body fields to read.</summary>
    public string[] Fields { get; }

    /// <summary>The response headers (and trailers) that carry a cost.</summary>
    public string[] Headers { get; }

    /// <summary>Whether any rule reads usage from the response body.</summary>
    public bool ReadsBody { get; }

    /// <summary>The most request body read for fields.</summary>
    public int MaxBodyBytes { get; }

    /// <summary>The plan of <paramref name="policy"/>; <see langword="null"/> when it has no cost rule.</summary>
    public static CostPlan? Of(RateLimitPolicy policy)
    {
        var last = s_last;
        if (ReferenceEquals(last.Policy, policy))
        {
            return last.Plan;
        }

        var plan = Build(policy);
        s_last = (policy, plan);
        return plan;
    }

    private static CostPlan? Build(RateLimitPolicy policy)
    {
        var rules = new List<RateLimitRule>();
        foreach (var tier in Enum.GetValues<RateLimitTier>())
        {
            foreach (var rule in policy.RulesOf(tier))
            {
                if (rule.Costs is not null)
                {
                    rules.Add(rule);
                }
            }
        }

        if (rules.Count == 0)
        {
            return null;
        }

        var fieldRules = rules.Where(r => r.Costs!.Reserve.Field is not null || r.Costs.ModelField is not null).ToArray();
        var fields = fieldRules.SelectMany(r => new[] { r.Costs!.Reserve.Field, r.Costs.ModelField }).OfType<string>().Distinct(StringComparer.Ordinal).ToArray();
        var headers = rules.Select(r => r.Costs!.Header).OfType<string>().Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        var maxBody = fieldRules.Length == 0 ? 0 : fieldRules.Max(r => r.Costs!.MaxRequestBodyBytes);
        return new CostPlan(fieldRules, fields, headers, rules.Any(r => r.Costs!.ReadsBodyUsage), maxBody);
    }
}
