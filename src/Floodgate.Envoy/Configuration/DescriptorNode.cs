namespace Floodgate.Envoy.Configuration;

/// <summary>One level of a domain's descriptor tree.</summary>
internal sealed class DescriptorNode
{
    /// <summary>Children with a key and an exact value.</summary>
    public Dictionary<(string Key, string Value), DescriptorNode> Exact { get; } = [];

    /// <summary>Children whose value holds a <c>*</c>, in file order: the first that matches wins.</summary>
    public List<WildcardChild> Wildcards { get; } = [];

    /// <summary>Children with a key and no value: they match any value of the key.</summary>
    public Dictionary<string, DescriptorNode> ByKey { get; } = new(StringComparer.Ordinal);

    /// <summary>The rule at this level, if any.</summary>
    public EnvoyRule? Rule { get; set; }

    /// <summary>Whether descriptors matched through this node's wildcard share one counter (the pattern's).</summary>
    public bool ShareThreshold { get; set; }

    /// <summary>Whether metrics name the runtime value of this level instead of the configured one.</summary>
    public bool ValueToMetric { get; set; }

    /// <summary>The configured value, or the pattern, or <see langword="null"/> for a value-less key.</summary>
    public string? Value { get; set; }

    /// <summary>Whether the node has children.</summary>
    public bool HasChildren => Exact.Count > 0 || Wildcards.Count > 0 || ByKey.Count > 0;

    /// <summary>The child that matches <paramref name="key"/> = <paramref name="value"/>: exact, then wildcard, then value-less.</summary>
    public DescriptorNode? Find(string key, string value, out bool viaWildcard)
    {
        viaWildcard = false;
        if (Exact.TryGetValue((key, value), out var exact))
        {
            return exact;
        }

        foreach (var wildcard in Wildcards)
        {
            if (wildcard.Key == key && wildcard.Matches(value))
            {
                viaWildcard = true;
                return wildcard.Node;
            }
        }

        return ByKey.GetValueOrDefault(key);
    }
}

/// <summary>A child whose value is a pattern in which each <c>*</c> matches any run of characters, including none.</summary>
internal sealed class WildcardChild(string key, string pattern, DescriptorNode node)
{
    private readonly string[] _parts = pattern.Split('*');

    public string Key { get; } = key;

    public string Pattern { get; } = pattern;

    public DescriptorNode Node { get; } = node;

    /// <summary>Whether <paramref name="value"/> matches: starts with the first literal, ends with the last, holds the others in order.</summary>
    public bool Matches(string value)
    {
        var parts = _parts;
        var first = parts[0];
        var last = parts[^1];
        if (value.Length < first.Length + last.Length
            || !value.StartsWith(first, StringComparison.Ordinal)
            || !value.EndsWith(last, StringComparison.Ordinal))
        {
            return false;
        }

        var middle = value.AsSpan(first.Length, value.Length - first.Length - last.Length);
        for (var i = 1; i < parts.Length - 1; i++)
        {
            var at = middle.IndexOf(parts[i], StringComparison.Ordinal);
            if (at < 0)
            {
                return false;
            }

            middle = middle[(at + parts[i].Length)..];
        }

        return true;
    }
}
