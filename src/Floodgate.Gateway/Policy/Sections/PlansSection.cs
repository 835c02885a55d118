using Floodgate.Limits;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>The <c>plans</c> section and the top-level <c>default_plan</c>.</summary>
internal static class PlansSection
{
    public static PlanSet Read(YamlReader reader, YamlMappingNode root)
    {
        var plans = new Dictionary<string, Plan>(StringComparer.Ordinal);
        var map = reader.Map(YamlReader.Get(root, "plans"), "plans");
        foreach (var (key, value) in map?.Children ?? Enumerable.Empty<KeyValuePair<YamlNode, YamlNode>>())
        {
            if (reader.KeyName(key, "plans") is not { } name)
            {
                continue;
            }

            var field = $"plans.{name}";
            var plan = reader.Map(value, field);
            if (plan is null)
            {
                reader.Error(value, field, "expected a mapping of limits such as { per_user: 300/min, burst: 50 }.");
                continue;
            }

            var rates = new Dictionary<string, Rate>(StringComparer.Ordinal);
            long? burst = null;
            foreach (var (k, v) in plan.Children)
            {
                if (reader.KeyName(k, field) is not { } fieldName)
                {
                    continue;
                }

                if (fieldName == "burst")
                {
                    burst = reader.Integer(plan, "burst", field, 1, long.MaxValue / 2);
                    continue;
                }

                var text = (v as YamlScalarNode)?.Value;
                if (Rate.TryParse(text, out var rate, out var error))
                {
                    rates[fieldName] = rate;
                }
                else
                {
                    reader.Error(v, $"{field}.{fieldName}", error);
                }
            }

            plans[name] = new Plan(rates, burst);
        }

        var set = new PlanSet(plans, reader.String(root, "default_plan", string.Empty));
        set.CheckName(reader, YamlReader.Get(root, "default_plan"), "default_plan");
        return set;
    }
}

/// <summary>A plan: its rates by field name (such as <c>per_user</c>), and the burst of its gcra limits.</summary>
internal sealed record Plan(IReadOnlyDictionary<string, Rate> Rates, long? Burst);

/// <summary>The plans, by name, and the plan of requests that name none (the top-level <c>default_plan</c>).</summary>
internal sealed class PlanSet(IReadOnlyDictionary<string, Plan> plans, string? defaultPlan)
{
    public IReadOnlyDictionary<string, Plan> ByName => plans;

    /// <summary>The top-level <c>default_plan</c>; <see langword="null"/> when not given.</summary>
    public string? DefaultPlan => defaultPlan;

    /// <summary>Refuses a plan name, at <paramref name="node"/>, that names none of the plans (when there are plans).</summary>
    public void CheckName(YamlReader reader, YamlNode? node, string field)
    {
        if (plans.Count > 0 && node is YamlScalarNode { Value: { } named } && !plans.ContainsKey(named))
        {
            reader.Error(node, field, $"'{named}' is not a plan; the plans are: {string.Join(", ", plans.Keys)}.");
        }
    }
}
