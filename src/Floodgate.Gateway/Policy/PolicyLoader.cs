using System.Security.Cryptography;
using System.Text;
using Floodgate.AspNetCore;
using Floodgate.Gateway.Policy.Sections;
using Floodgate.Yaml;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy;

/// <summary>
/// Reads and validates a policy file, section by section (<c>Policy/Sections</c>), into the option types of the parts it
/// configures. Every problem is reported at once, each with file, line and field, so one run of <c>floodgate check</c>
/// shows everything to fix.
/// </summary>
public static class PolicyLoader
{
    private static readonly string[] TopLevel =
    [
        "upstream", "routes", "clusters", "store", "identity", "anonymous", "plans", "default_plan",
        "edge", "user", "service", "global", "trusted_proxies", "forwarded_header", "headers", "shadow", "ipv6_prefix", "proxy", "admin",
        "api_keys", "events",
        "bypass", "deny", "ratelimit_id",
    ];

    /// <summary>
    /// The key files <c>identity.jwt.keys</c> names in the file at <paramref name="path"/>, read as far as it can be, valid
    /// or not; none when it cannot be read. The watcher watches these too, so that a key file a refused policy named is
    /// picked up when it appears.
    /// </summary>
    internal static IReadOnlyList<string> KeyFilesNamedIn(string path)
    {
        try
        {
            var stream = LoadYaml(File.ReadAllText(path), path);
            return stream.Documents.Count > 0 ? IdentitySection.KeyFilesNamedIn(stream.Documents[0].RootNode as YamlMappingNode) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PolicyException)
        {
            return [];
        }
    }

    /// <summary>Reads and validates the policy file at <paramref name="path"/>.</summary>
    /// <exception cref="PolicyException">The file is missing, unreadable or invalid; the errors say where and why.</exception>
    public static GatewayPolicy Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new PolicyException([new PolicyError(path, 0, 0, "(file)", $"cannot be read: {e.Message}")]);
        }

        return Parse(text, path);
    }

    /// <summary>Validates the policy in <paramref name="text"/>, naming it <paramref name="file"/> in errors.</summary>
    /// <exception cref="PolicyException">The policy is invalid.</exception>
    public static GatewayPolicy Parse(string text, string file)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(file);
        var reader = new YamlReader(file);
        var root = reader.Map(ReadDocument(text, file), string.Empty, TopLevel)
            ?? throw new PolicyException(reader.Errors.Count > 0 ? reader.Errors : [new PolicyError(file, 1, 1, "(file)", "expected a mapping of policy fields.")]);

        var (routes, clusters) = ProxySection.Read(reader, root);
        var store = StoreSection.Read(reader, root);
        var plans = PlansSection.Read(reader, root);
        var floodgate = new FloodgateOptions();
        var identity = IdentitySection.Read(reader, root, plans, floodgate);
        RulesSection.Read(reader, root, new RuleSection(reader, plans, plans.DefaultPlan ?? identity.Jwt?.DefaultPlan, store), floodgate);
        HttpSection.Read(reader, root, floodgate);
        var (adminTokens, adminCertificates) = AdminSection.Read(reader, root);
        var events = EventsSection.Read(reader, root);
        var apiKeys = ApiKeysSection.Read(reader, root, plans, identity.Jwt is not null);
        var secrets = new SecretSources(reader);
        AccessSection.Read(reader, root, secrets, floodgate);
        RateLimitIdSection.Read(reader, root, secrets, floodgate);
        if (reader.Errors.Count == 0)
        {
            // The middleware's own checks, so that what the loader accepts the middleware takes; the sections have
            // checked each field already, with its line.
            try
            {
                floodgate.Validate();
            }
            catch (ArgumentException e)
            {
                reader.Error(root, "(policy)", MessageOf(e));
            }
        }

        if (reader.Errors.Count > 0)
        {
            throw new PolicyException([.. reader.Errors.OrderBy(e => e.Line).ThenBy(e => e.Column)]);
        }

        return new GatewayPolicy
        {
            Source = file,
            // The key files count too: a rotated key is a new policy, and a reload puts it in force.
            Version = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text + "\n" + identity.KeyFilesFingerprint + "\n" + secrets.Fingerprint)))[..12],
            Floodgate = floodgate,
            Jwt = identity.Jwt,
            KeyFiles = identity.KeyFiles,
            IdentityVersion = identity.Version + apiKeys.Version,
            ApiKeys = apiKeys.Options,
            SecretFiles = secrets.Files,
            AsksClientCertificates = floodgate.Access.Bypass.Any(b => b.CertificateThumbprints.Count > 0),
            MemoryStore = store.Memory,
            RedisStore = store.Redis,
            AdminTokens = adminTokens,
            AdminClientCertificates = adminCertificates,
            Events = events,
            Routes = routes,
            Clusters = clusters,
        };
    }

    /// <summary>
    /// A library's argument error as a policy error reads: its first line, without the " (Parameter 'x')" that names a C#
    /// parameter rather than a field, or the "Actual value was" line an out-of-range error adds.
    /// </summary>
    internal static string MessageOf(ArgumentException e)
    {
        var message = e.Message;
        var newline = message.IndexOfAny(['\r', '\n']);
        if (newline >= 0)
        {
            message = message[..newline];
        }

        return e.ParamName is null ? message : message.Replace($" (Parameter '{e.ParamName}')", string.Empty, StringComparison.Ordinal);
    }

    internal static string ExpandHome(string path) =>
        path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..])
            : path;

    /// <summary>The policy's one YAML document.</summary>
    /// <exception cref="PolicyException">The text is not YAML, or holds no document or several.</exception>
    private static YamlNode ReadDocument(string text, string file)
    {
        var stream = LoadYaml(text, file);

        if (stream.Documents.Count == 0)
        {
            throw new PolicyException([new PolicyError(file, 0, 0, "(file)", "is empty; a policy needs at least 'upstream' or 'routes'.")]);
        }

        if (stream.Documents.Count > 1)
        {
            // Everything after a '---' would otherwise be dropped without a word, and its rules with it.
            var second = stream.Documents[1].RootNode.Start;
            throw new PolicyException([new PolicyError(file, (int)second.Line, (int)second.Column, "(file)", "holds more than one YAML document ('---'); a policy is one document.")]);
        }

        return stream.Documents[0].RootNode;
    }

    /// <summary>The policy's YAML stream.</summary>
    /// <exception cref="PolicyException">The text is not YAML: the error says where and why.</exception>
    private static YamlStream LoadYaml(string text, string file)
    {
        try
        {
            return YamlSyntax.Load(text);
        }
        catch (YamlSyntaxException e)
        {
            throw new PolicyException([new PolicyError(file, e.Line, e.Column, "(syntax)", e.Message)]);
        }
    }
}
