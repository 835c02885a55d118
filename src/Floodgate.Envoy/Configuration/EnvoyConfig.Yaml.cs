using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Envoy.Configuration;

// Reading YAML as the reference's library does: merge keys, nulls, flags, and only the keys a mapping may hold.
public sealed partial class EnvoyConfig
{
    private sealed partial class FileParser
    {
        private static YamlNode? Find(YamlMappingNode map, string key)
        {
            foreach (var (k, v) in Entries(map))
            {
                if (k is YamlScalarNode { Value: { } name } && name == key)
                {
                    return v;
                }
            }

            return null;
        }

        /// <summary>
        /// The mapping's entries, with YAML merge keys (<c>&lt;&lt;: *anchor</c>, or a list of anchors) resolved as the
        /// reference's YAML library resolves them: explicit keys first, then merged keys the mapping does not set.
        /// </summary>
        private static IEnumerable<KeyValuePair<YamlNode, YamlNode>> Entries(YamlMappingNode map, int depth = 0)
        {
            YamlNode? merge = null;
            foreach (var entry in map.Children)
            {
                if (entry.Key is YamlScalarNode { Value: "<<" })
                {
                    merge = entry.Value;
                    continue;
                }

                yield return entry;
            }

            if (merge is null || depth > 16)
            {
                yield break;
            }

            var sources = merge is YamlSequenceNode list ? list.Children : [merge];
            foreach (var source in sources)
            {
                if (source is not YamlMappingNode merged)
                {
                    continue;
                }

                foreach (var entry in Entries(merged, depth + 1))
                {
                    if (entry.Key is YamlScalarNode { Value: { } name } && !map.Children.Keys.Any(k => k is YamlScalarNode { Value: { } own } && own == name))
                    {
                        yield return entry;
                    }
                }
            }
        }

        private void CheckKeys(YamlMappingNode map, string[] allowed, string where)
        {
            if (map.Children.TryGetValue(new YamlScalarNode("<<"), out var merge)
                && merge is not YamlMappingNode && !(merge is YamlSequenceNode list && list.All(n => n is YamlMappingNode)))
            {
                throw Error(merge.Start.Line, $"the merge key '<<' in {where} must name a mapping or a list of mappings");
            }

            foreach (var (k, _) in Entries(map))
            {
                if (k is not YamlScalarNode { Value: { } name })
                {
                    throw Error(k.Start.Line, $"{where} has a key that is not a plain string");
                }

                if (Array.IndexOf(allowed, name) < 0)
                {
                    throw Error(k.Start.Line, $"unknown key '{name}' in {where}; expected one of {string.Join(", ", allowed)}");
                }
            }
        }

        private YamlMappingNode AsMapping(YamlNode node, string what) =>
            node as YamlMappingNode ?? throw Error(node.Start.Line, $"{what} must be a mapping of keys to values");

        private string? OptionalString(YamlMappingNode map, string key) =>
            Find(map, key) is { } node ? Scalar(node, key) : null;

        private string Scalar(YamlNode node, string key) =>
            node is YamlScalarNode scalar
                ? IsNull(scalar) ? string.Empty : scalar.Value ?? string.Empty
                : throw Error(node.Start.Line, $"'{key}' must be a single value, not a list or a mapping");

        /// <summary>
        /// Whether the node is YAML's null, as the reference's YAML library reads it: empty, or a plain (unquoted)
        /// <c>~</c>, <c>null</c>, <c>Null</c> or <c>NULL</c>; a null value is absent (<c>value: ~</c> matches the key alone).
        /// </summary>
        private static bool IsNull(YamlNode node) =>
            node is YamlScalarNode scalar
            && (string.IsNullOrEmpty(scalar.Value)
                || (scalar.Style is YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any && scalar.Value is "~" or "null" or "Null" or "NULL"));

        private bool Flag(YamlMappingNode map, string key)
        {
            if (Find(map, key) is not { } node)
            {
                return false;
            }

            return Scalar(node, key).ToLowerInvariant() switch
            {
                "true" or "yes" or "on" => true,
                "false" or "no" or "off" or "" => false,
                var other => throw Error(node.Start.Line, $"'{key}' must be true or false, not '{other}'"),
            };
        }
    }
}
