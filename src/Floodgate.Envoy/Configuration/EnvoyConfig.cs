using System.Globalization;
using Envoy.Extensions.Common.Ratelimit.V3;
using Floodgate.Limits;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using Unit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Floodgate.Envoy.Configuration;

/// <summary>
/// A loaded envoyproxy/ratelimit configuration: one descriptor tree per domain, validated and immutable, swapped as a
/// whole on reload.
/// </summary>
/// <remarks>
/// The format is the reference's: <c>domain</c>; <c>descriptors</c> with <c>key</c>, <c>value</c> (exact, or a pattern
/// with <c>*</c>), nested <c>descriptors</c>, <c>rate_limit</c> (<c>unit</c>, <c>requests_per_unit</c>, <c>unlimited</c>,
/// <c>name</c>, <c>replaces</c>), <c>shadow_mode</c>, <c>quota_mode</c>, <c>detailed_metric</c>,
/// <c>value_to_metric</c>, <c>share_threshold</c> and <c>metadata</c> (accepted, not emitted). Floodgate adds
/// <c>algorithm</c> (<c>fixed_window</c>, the default, <c>sliding_window</c> or <c>gcra</c>) and <c>burst</c> (gcra only)
/// to <c>rate_limit</c>.
/// </remarks>
public sealed class EnvoyConfig
{
    /// <summary>The largest file read, in bytes: larger files are refused before they are parsed.</summary>
    internal const int MaxFileBytes = 4 * 1024 * 1024;

    /// <summary>The deepest nesting of descriptors a file may declare.</summary>
    internal const int MaxDescriptorDepth = 32;

    /// <summary>The most descriptors one file may declare, aliases expanded.</summary>
    internal const int MaxDescriptorsPerFile = 100_000;

    /// <summary>The deepest nesting of YAML lists and mappings a file may hold, checked before the tree is built.</summary>
    private const int MaxYamlNesting = (2 * MaxDescriptorDepth) + 16;

    private static readonly string[] RootKeys = ["domain", "descriptors"];
    private static readonly string[] DescriptorKeys =
        ["key", "value", "rate_limit", "descriptors", "shadow_mode", "quota_mode", "detailed_metric", "value_to_metric", "share_threshold", "metadata"];

    private static readonly string[] RateLimitKeys = ["unit", "requests_per_unit", "unlimited", "name", "replaces", "algorithm", "burst"];
    private static readonly string[] ReplacesKeys = ["name"];

    private readonly Dictionary<string, DescriptorNode> _domains;

    private EnvoyConfig(Dictionary<string, DescriptorNode> domains, int ruleCount, IReadOnlyList<string> files)
    {
        _domains = domains;
        RuleCount = ruleCount;
        Files = files;
    }

    /// <summary>A configuration without domains: every request is answered OK.</summary>
    public static EnvoyConfig Empty { get; } = new([], 0, []);

    /// <summary>The configured domains.</summary>
    public IReadOnlyCollection<string> Domains => _domains.Keys;

    /// <summary>How many <c>rate_limit</c> entries the configuration holds.</summary>
    public int RuleCount { get; }

    /// <summary>The files the configuration was loaded from, in load order.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>
    /// The entries of the directory that were not read: files other than <c>*.yaml</c> and <c>*.yml</c>, and
    /// subdirectories (named with a trailing separator); names starting with a dot are not listed.
    /// </summary>
    public IReadOnlyList<string> SkippedEntries { get; private set; } = [];

    /// <summary>
    /// Loads every <c>*.yaml</c> and <c>*.yml</c> file directly in <paramref name="directory"/>, in ordinal name order,
    /// skipping names that start with a dot (such as the <c>..data</c> entries of a Kubernetes ConfigMap volume).
    /// </summary>
    /// <param name="directory">The directory.</param>
    /// <param name="mergeDomains">Whether files may add descriptors to a domain another file declared, instead of that being an error.</param>
    /// <exception cref="EnvoyConfigException">A file is invalid; the message names it, the line and the key.</exception>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    public static EnvoyConfig LoadDirectory(string directory, bool mergeDomains = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"The rate limit configuration directory '{directory}' does not exist.");
        }

        var paths = new List<string>();
        var skipped = new List<string>();
        foreach (var path in Directory.EnumerateFileSystemEntries(directory))
        {
            var name = Path.GetFileName(path);
            if (name.StartsWith('.'))
            {
                continue;
            }

            if (Directory.Exists(path))
            {
                skipped.Add(name + Path.DirectorySeparatorChar);
            }
            else if (name.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            {
                paths.Add(path);
            }
            else
            {
                skipped.Add(name);
            }
        }

        var files = paths
            .Order(StringComparer.Ordinal)
            .Select(path => new EnvoyConfigFile(Path.GetFileName(path), ReadFile(path)))
            .ToList();
        var config = Parse(files, mergeDomains);
        skipped.Sort(StringComparer.Ordinal);
        config.SkippedEntries = skipped;
        return config;
    }

    private static string ReadFile(string path)
    {
        var length = new FileInfo(path).Length;
        if (length > MaxFileBytes)
        {
            throw new EnvoyConfigException(Path.GetFileName(path), 0, $"the file is {length} bytes; at most {MaxFileBytes} are read");
        }

        return File.ReadAllText(path);
    }

    /// <summary>Parses configuration files, one domain each.</summary>
    /// <param name="files">The files, in load order.</param>
    /// <param name="mergeDomains">Whether files may add descriptors to a domain another file declared, instead of that being an error.</param>
    /// <exception cref="EnvoyConfigException">A file is invalid; the message names it, the line and the key.</exception>
    public static EnvoyConfig Parse(IEnumerable<EnvoyConfigFile> files, bool mergeDomains = false)
    {
        ArgumentNullException.ThrowIfNull(files);
        var domains = new Dictionary<string, DescriptorNode>(StringComparer.Ordinal);
        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new List<string>();
        var rules = 0;
        foreach (var file in files)
        {
            names.Add(file.Name);
            rules += new FileParser(file.Name).Parse(file.Yaml, domains, owners, mergeDomains);
        }

        return new EnvoyConfig(domains, rules, names);
    }

    /// <summary>Whether <paramref name="domain"/> is configured.</summary>
    public bool HasDomain(string domain) => _domains.ContainsKey(domain);

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

    /// <summary>Parses one file into the domains.</summary>
    private sealed class FileParser(string fileName)
    {
        private readonly HashSet<YamlNode> _path = new(ReferenceEqualityComparer.Instance);
        private int _rules;
        private int _descriptors;

        public int Parse(string yaml, Dictionary<string, DescriptorNode> domains, Dictionary<string, string> owners, bool merge)
        {
            if (yaml.Length > MaxFileBytes)
            {
                throw Error(0, $"the file is {yaml.Length} characters; at most {MaxFileBytes} are read");
            }

            var stream = new YamlStream();
            try
            {
                // The tree is built recursively: refuse a nesting deep enough to exhaust the stack first.
                CheckNesting(yaml);
                stream.Load(new StringReader(yaml));
            }
            catch (YamlException ex)
            {
                throw Error(ex.Start.Line, $"the file is not valid YAML: {Describe(ex)}", ex);
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

        private EnvoyRule LoadRule(YamlNode yaml, string domain, string fullKey, bool shadow, bool quota, bool detailed)
        {
            var map = AsMapping(yaml, $"'rate_limit' of '{fullKey}'");
            var where = $"rate_limit of '{fullKey}'";
            CheckKeys(map, RateLimitKeys, where);
            var unlimited = Flag(map, "unlimited");
            var unitText = OptionalString(map, "unit");
            var unit = Unit.Unknown;
            if (unitText is not null && !EnvoyUnits.TryParse(unitText, out unit) && !unlimited)
            {
                throw Error(Find(map, "unit")!.Start.Line, $"invalid rate limit unit '{unitText}' in {where}; use second, minute, hour, day, week, month or year");
            }

            if (unlimited && unit != Unit.Unknown)
            {
                throw Error(Find(map, "unit")!.Start.Line, $"{where} is unlimited and must not also specify a 'unit'");
            }

            if (!unlimited && unit == Unit.Unknown)
            {
                throw Error(map.Start.Line, $"{where} has no 'unit'; use second, minute, hour, day, week, month or year, or 'unlimited: true'");
            }

            uint requests = 0;
            if (Find(map, "requests_per_unit") is { } requestsNode
                && !uint.TryParse(Scalar(requestsNode, "requests_per_unit"), NumberStyles.None, CultureInfo.InvariantCulture, out requests))
            {
                throw Error(requestsNode.Start.Line, $"'requests_per_unit' of '{fullKey}' must be a whole number from 0 to {uint.MaxValue}");
            }

            var name = OptionalString(map, "name");
            var replaces = new List<string>();
            if (Find(map, "replaces") is { } replacesNode && !IsNull(replacesNode))
            {
                if (replacesNode is not YamlSequenceNode replacesList)
                {
                    throw Error(replacesNode.Start.Line, $"'replaces' of '{fullKey}' must be a list of '- name: ...' entries");
                }

                foreach (var entry in replacesList)
                {
                    var entryMap = AsMapping(entry, $"an entry of 'replaces' of '{fullKey}'");
                    CheckKeys(entryMap, ReplacesKeys, $"'replaces' of '{fullKey}'");
                    var replaced = OptionalString(entryMap, "name");
                    if (string.IsNullOrEmpty(replaced))
                    {
                        throw Error(entry.Start.Line, $"'replaces' of '{fullKey}' has an entry with an empty 'name'");
                    }

                    if (replaced == name)
                    {
                        throw Error(entry.Start.Line, $"'replaces' of '{fullKey}' names the rule itself ('{name}')");
                    }

                    replaces.Add(replaced);
                }
            }

            var algorithm = LimitAlgorithm.FixedWindow;
            if (OptionalString(map, "algorithm") is { } algorithmText)
            {
                algorithm = algorithmText.ToLowerInvariant() switch
                {
                    "fixed_window" => LimitAlgorithm.FixedWindow,
                    "sliding_window" => LimitAlgorithm.SlidingWindow,
                    "gcra" or "token_bucket" => LimitAlgorithm.Gcra,
                    _ => throw Error(Find(map, "algorithm")!.Start.Line, $"unknown algorithm '{algorithmText}' in {where}; use fixed_window, sliding_window or gcra"),
                };
            }

            long? burst = null;
            if (Find(map, "burst") is { } burstNode)
            {
                if (algorithm != LimitAlgorithm.Gcra)
                {
                    throw Error(burstNode.Start.Line, $"'burst' in {where} needs 'algorithm: gcra'");
                }

                if (!long.TryParse(Scalar(burstNode, "burst"), NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b < 1)
                {
                    throw Error(burstNode.Start.Line, $"'burst' in {where} must be a whole number of at least 1");
                }

                burst = b;
            }

            if (unlimited && Find(map, "algorithm") is { } algorithmNode)
            {
                throw Error(algorithmNode.Start.Line, $"{where} is unlimited and must not also specify an 'algorithm'");
            }

            try
            {
                return new EnvoyRule(domain, fullKey, requests, unit, algorithm, burst, name, [.. replaces], unlimited, shadow, quota, detailed);
            }
            catch (ArgumentException ex)
            {
                throw Error(map.Start.Line, $"{where}: {ex.Message}", ex);
            }
        }

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

        private EnvoyConfigException Error(long line, string problem, Exception? inner = null) => new(fileName, line, problem, inner);

        private static string Describe(YamlException ex) =>
            ex.InnerException is YamlException inner && !string.IsNullOrEmpty(inner.Message) ? inner.Message : ex.Message;
    }
}

/// <summary>The rule a descriptor matched, and which of its entries count under their wildcard pattern.</summary>
/// <param name="Rule">The rule; <see langword="null"/> when none applies.</param>
/// <param name="SharedPatterns">Per entry, the pattern that replaces the value in the key (share_threshold), or <see langword="null"/>.</param>
/// <param name="ValueToMetric">Whether a value_to_metric level makes the metric name differ from the rule's path.</param>
internal readonly record struct DescriptorMatch(EnvoyRule? Rule, string[]? SharedPatterns, bool ValueToMetric);
