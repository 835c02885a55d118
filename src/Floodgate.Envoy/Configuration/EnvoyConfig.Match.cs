using Envoy.Extensions.Common.Ratelimit.V3;

namespace Floodgate.Envoy.Configuration;

// Finding the rule of a request's descriptor in the domains' descriptor trees.
public sealed partial class EnvoyConfig
{
    /// <summary>
    /// Finds the rule for a descriptor: the request's depth must equal the rule's depth, and at each level an exact value
    /// beats a wildcard, which beats a value-less key.
    /// </summary>
    internal DescriptorMatch Match(string domain, IReadOnlyList<RateLimitDescriptor.Types.Entry> entries)
    {
        if (!_domains.TryGetValue(domain, out var node))
        {
            return default;
        }

        string[]? shared = null;
        var metricKeyDiffers = false;
        for (var i = 0; i < entries.Count; i++)
        {
            var key = entries[i].Key;
            var value = entries[i].Value;
            var next = node.Find(key, value, out var viaWildcard);
            if (next is null)
            {
                return default;
            }

            if (viaWildcard && next.ShareThreshold)
            {
                shared ??= new string[entries.Count];
                shared[i] = next.Value!;
            }

            metricKeyDiffers |= next.ValueToMetric && (viaWildcard || next.Value is null);
            if (i == entries.Count - 1)
            {
                return next.Rule is null ? default : new DescriptorMatch(next.Rule, shared, metricKeyDiffers);
            }

            if (!next.HasChildren)
            {
                return default;
            }

            node = next;
        }

        return default;
    }
}

/// <summary>The rule a descriptor matched, and which of its entries count under their wildcard pattern.</summary>
/// <param name="Rule">The rule; <see langword="null"/> when none applies.</param>
/// <param name="SharedPatterns">Per entry, the pattern that replaces the value in the key (share_threshold), or <see langword="null"/>.</param>
/// <param name="ValueToMetric">Whether a value_to_metric level makes the metric name differ from the rule's path.</param>
internal readonly record struct DescriptorMatch(EnvoyRule? Rule, string[]? SharedPatterns, bool ValueToMetric);
