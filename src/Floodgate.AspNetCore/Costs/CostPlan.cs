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
    // The last policy asked about and its plan, as one object: a reader never pairs one policy with another's plan.
    private static Cached? s_last;
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<RateLimitPolicy, Cached> Plans = [];

    private CostPlan(RateLimitRule[] fieldRules, string[] fields, string[] headers, bool readsBody, bool readsModel, int maxBodyBytes)
    {
        ReadsModel = readsModel;
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

    /// <summary>Whether any rule prices tokens by a model, which the response may name.</summary>
    public bool ReadsModel { get; }

    /// <summary>The most request body read for fields.</summary>
    public int MaxBodyBytes { get; }

    /// <summary>The plan of <paramref name="policy"/>; <see langword="null"/> when it has no cost rule.</summary>
    public static CostPlan? Of(RateLimitPolicy policy)
    {
        var last = Volatile.Read(ref s_last);
        if (last is not null && ReferenceEquals(last.Policy, policy))
        {
            return last.Plan;
        }

        // Several hosts in one process (replicas in tests, a policy per tenant) each keep their plan.
        var cached = Plans.GetValue(policy, p => new Cached(p, Build(p)));
        Volatile.Write(ref s_last, cached);
        return cached.Plan;
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
        return new CostPlan(fieldRules, fields, headers, rules.Any(r => r.Costs!.ReadsBodyUsage), rules.Any(r => r.Costs!.Measure == CostMeasure.Money), maxBody);
    }

    private sealed record Cached(RateLimitPolicy Policy, CostPlan? Plan);
}
