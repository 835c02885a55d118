using Floodgate.AspNetCore;
using Floodgate.Rules;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The rules: the tiers <c>edge</c>, <c>user</c>, <c>service</c> and <c>global</c> (each rule read by
/// <see cref="RuleSection"/>), <c>shadow</c> and <c>ipv6_prefix</c>, read into the middleware's policy and bans.
/// </summary>
internal static class RulesSection
{
    private static readonly (string Name, RateLimitTier Tier)[] Tiers =
        [("edge", RateLimitTier.Edge), ("user", RateLimitTier.User), ("service", RateLimitTier.Service), ("global", RateLimitTier.Global)];

    public static void Read(YamlReader reader, YamlMappingNode root, RuleSection section, FloodgateOptions floodgate)
    {
        var rules = new List<RateLimitRule>();
        var adaptiveRules = new List<Floodgate.Adaptive.AdaptiveConcurrencyRule>();
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (tierName, tier) in Tiers)
        {
            var node = YamlReader.Get(root, tierName);
            if (node is null || YamlReader.IsNull(node))
            {
                continue;
            }

            if (node is not YamlSequenceNode list)
            {
                reader.Error(node, tierName, "expected a list of rules.");
                continue;
            }

            for (var i = 0; i < list.Children.Count; i++)
            {
                var field = $"{tierName}[{i}]";
                if (section.Read(list.Children[i], field, tier) is not { } read)
                {
                    continue;
                }

                var (rule, ban, adaptive) = read;
                var name = rule?.Name ?? adaptive!.Name;
                if (names.TryGetValue(name, out var other))
                {
                    reader.Error(YamlReader.Get((YamlMappingNode)list.Children[i], "name"), $"{field}.name", $"'{name}' is also the name of {other}; rule names must be unique.");
                    continue;
                }

                names[name] = field;
                if (adaptive is not null)
                {
                    adaptiveRules.Add(adaptive);
                }

                if (rule is null)
                {
                    continue;
                }

                rules.Add(rule);
                if (ban is { } duration)
                {
                    floodgate.Bans[rule.Name] = duration;
                }
            }
        }

        var shadow = reader.Bool(root, "shadow", string.Empty) ?? false;
        var ipv6 = (int)(reader.Integer(root, "ipv6_prefix", string.Empty, 8, 128) ?? 64);
        floodgate.Policy = new RateLimitPolicy(rules) { ShadowAll = shadow, Ipv6PrefixLength = ipv6 };
        floodgate.AdaptiveRules = adaptiveRules;
    }
}
