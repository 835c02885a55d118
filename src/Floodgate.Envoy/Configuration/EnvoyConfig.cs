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
public sealed partial class EnvoyConfig
{
    /// <summary>The largest file read, in bytes: larger files are refused before they are parsed.</summary>
    internal const int MaxFileBytes = 4 * 1024 * 1024;

    /// <summary>The deepest nesting of descriptors a file may declare.</summary>
    internal const int MaxDescriptorDepth = 32;

    /// <summary>The most descriptors one file may declare, aliases expanded.</summary>
    internal const int MaxDescriptorsPerFile = 100_000;

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
}
