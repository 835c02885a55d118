using YamlDotNet.Core;
using Floodgate.Yaml;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Envoy.Configuration;

// Reading one file: its domain and the tree of its descriptors, within the limits on size and nesting.
public sealed partial class EnvoyConfig
{
    /// <summary>Parses one file into the domains.</summary>
    private sealed partial class FileParser(string fileName)
    {
        /// <summary>The deepest nesting of YAML lists and mappings a file may hold, checked before the tree is built.</summary>
        private const int MaxYamlNesting = (2 * MaxDescriptorDepth) + 16;

        private static readonly string[] RootKeys = ["domain", "descriptors"];
        private static readonly string[] DescriptorKeys =
            ["key", "value", "rate_limit", "descriptors", "shadow_mode", "quota_mode", "detailed_metric", "value_to_metric", "share_threshold", "metadata"];

        private readonly HashSet<YamlNode> _path = new(ReferenceEqualityComparer.Instance);
        private int _rules;
        private int _descriptors;

        public int Parse(string yaml, Dictionary<string, DescriptorNode> domains, Dictionary<string, string> owners, bool merge)
        {
            if (yaml.Length > MaxFileBytes)
            {
                throw Error(0, $"the file is {yaml.Length} characters; at most {MaxFileBytes} are read");
            }

            YamlStream stream;
            try
            {
                // The tree is built recursively: refuse a nesting deep enough to exhaust the stack first.
                CheckNesting(yaml);
                stream = YamlSyntax.Load(yaml);
            }
            catch (YamlSyntaxException ex)
            {
                throw new EnvoyConfigException(fileName, ex.Line, ex.Column, $"the file is not valid YAML: {ex.Message}", ex);
            }

            if (stream.Documents.Count == 0 || IsNull(stream.Documents[0].RootNode))
            {
                throw Error(0, "the file is empty; it must declare a 'domain'");
            }

            if (stream.Documents.Count > 1)
            {
                throw Error(stream.Documents[1].RootNode.Start.Line, "the file holds several YAML documents; put one domain in each file");
            }

            var root = AsMapping(stream.Documents[0].RootNode, "the file");
            CheckKeys(root, RootKeys, "the file");
            var domain = OptionalString(root, "domain") ?? string.Empty;
            if (domain.Length == 0)
            {
                throw Error(root.Start.Line, "the key 'domain' is missing or empty");
            }

            if (domains.TryGetValue(domain, out var node))
            {
                if (!merge)
                {
                    throw Error(Find(root, "domain")!.Start.Line, $"duplicate domain '{domain}', already declared in {owners[domain]}");
                }
            }
            else
            {
                node = new DescriptorNode();
                domains.Add(domain, node);
                owners.Add(domain, fileName);
            }

            if (Find(root, "descriptors") is { } descriptors)
            {
                LoadDescriptors(node, domain, domain, descriptors, 1);
            }

            return _rules;
        }

        private void CheckNesting(string yaml)
        {
            var parser = new Parser(new StringReader(yaml));
            var depth = 0;
            try
            {
                while (parser.MoveNext())
                {
                    switch (parser.Current)
                    {
                        case YamlDotNet.Core.Events.SequenceStart or YamlDotNet.Core.Events.MappingStart:
                            if (++depth > MaxYamlNesting)
                            {
                                throw Error(parser.Current.Start.Line, $"the YAML nests deeper than {MaxYamlNesting} lists and mappings");
                            }

                            break;
                        case YamlDotNet.Core.Events.SequenceEnd or YamlDotNet.Core.Events.MappingEnd:
                            depth--;
                            break;
                    }
                }
            }
            catch (Exception e) when (e is YamlException or InvalidOperationException)
            {
                // Not YAML up to its nesting limit: YamlSyntax.Load says where and why.
            }
        }

        private void LoadDescriptors(DescriptorNode parent, string domain, string parentKey, YamlNode list, int depth)
        {
            if (IsNull(list))
            {
                return;
            }

            if (list is not YamlSequenceNode sequence)
            {
                throw Error(list.Start.Line, $"'descriptors' under '{parentKey}' must be a list");
            }

            if (depth > MaxDescriptorDepth)
            {
                throw Error(list.Start.Line, $"descriptors under '{parentKey}' nest deeper than {MaxDescriptorDepth} levels");
            }

            // An alias can name a list that contains it: following it would never end.
            if (!_path.Add(sequence))
            {
                throw Error(list.Start.Line, $"the descriptors under '{parentKey}' contain themselves through a YAML alias");
            }

            foreach (var item in sequence)
            {
                if (++_descriptors > MaxDescriptorsPerFile)
                {
                    throw Error(item.Start.Line, $"the file declares more than {MaxDescriptorsPerFile} descriptors (aliases expanded)");
                }

                var map = AsMapping(item, $"a descriptor under '{parentKey}'");
                CheckKeys(map, DescriptorKeys, $"the descriptor under '{parentKey}'");
                var key = OptionalString(map, "key") ?? string.Empty;
                if (key.Length == 0)
                {
                    throw Error(map.Start.Line, $"a descriptor under '{parentKey}' has no 'key'");
                }

                var value = OptionalString(map, "value");
                if (value?.Length == 0)
                {
                    value = null;
                }

                var composite = value is null ? key : $"{key}_{value}";
                var fullKey = $"{parentKey}.{composite}";
                var node = new DescriptorNode
                {
                    Value = value,
                    ShareThreshold = Flag(map, "share_threshold"),
                    ValueToMetric = Flag(map, "value_to_metric"),
                };
                var added = value is null
                    ? parent.ByKey.TryAdd(key, node)
                    : value.Contains('*', StringComparison.Ordinal)
                        ? !parent.Wildcards.Exists(w => w.Key == key && w.Pattern == value)
                        : parent.Exact.TryAdd((key, value), node);
                if (!added)
                {
                    throw Error(map.Start.Line, $"duplicate descriptor composite key '{fullKey}'");
                }

                if (value is not null && value.Contains('*', StringComparison.Ordinal))
                {
                    parent.Wildcards.Add(new WildcardChild(key, value, node));
                }

                if (node.ShareThreshold && value?.Contains('*', StringComparison.Ordinal) != true)
                {
                    throw Error(Find(map, "share_threshold")!.Start.Line, $"'share_threshold' needs a wildcard value (one with '*'), but '{fullKey}' has none");
                }

                if (Find(map, "metadata") is { } metadata && metadata is not YamlMappingNode && !IsNull(metadata))
                {
                    throw Error(metadata.Start.Line, $"'metadata' of '{fullKey}' must be a mapping");
                }

                if (Find(map, "rate_limit") is { } rateLimit)
                {
                    node.Rule = LoadRule(rateLimit, domain, fullKey, Flag(map, "shadow_mode"), Flag(map, "quota_mode"), Flag(map, "detailed_metric"));
                    _rules++;
                }
                else
                {
                    // These flags only mean something on a rule, but the reference accepts them anywhere: so does Floodgate.
                    _ = Flag(map, "shadow_mode") | Flag(map, "quota_mode") | Flag(map, "detailed_metric");
                }

                if (Find(map, "descriptors") is { } children)
                {
                    LoadDescriptors(node, domain, fullKey, children, depth + 1);
                }
            }

            _path.Remove(sequence);
        }

        private EnvoyConfigException Error(long line, string problem, Exception? inner = null) => new(fileName, line, problem, inner);
    }
}
