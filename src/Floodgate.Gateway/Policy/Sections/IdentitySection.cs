using System.Security.Cryptography;
using System.Text;
using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Identity;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The <c>identity</c> section: <c>identity.jwt</c> read into <see cref="JwtIdentityOptions"/>, its key files read into
/// the options' keys, and what happens to requests without credentials (<c>identity.anonymous</c>, or the top-level
/// <c>anonymous</c>).
/// </summary>
internal static class IdentitySection
{
    private const string Field = "identity.jwt";
    private const string KeysField = "identity.jwt.keys";

    private static readonly (string, AnonymousPolicy)[] AnonymousPolicies = [("allow", AnonymousPolicy.Allow), ("reject", AnonymousPolicy.Reject)];

    public static IdentityRead Read(YamlReader reader, YamlMappingNode root, PlanSet plans, FloodgateOptions floodgate)
    {
        var identity = reader.Map(YamlReader.Get(root, "identity"), "identity", "jwt", "anonymous");
        floodgate.Anonymous = reader.Enum(identity, "anonymous", "identity", AnonymousPolicies)
            ?? reader.Enum(root, "anonymous", string.Empty, AnonymousPolicies)
            ?? AnonymousPolicy.Allow;
        var map = reader.Map(
            YamlReader.Get(identity, "jwt"),
            Field,
            "authority", "jwks_url", "keys", "secret", "issuer", "issuers", "audience", "audiences", "subject", "plan", "default_plan", "clock_skew", "algorithms", "require_https");
        return map is null ? IdentityRead.None : ReadJwt(reader, map, plans);
    }

    /// <summary>
    /// The key files <c>identity.jwt.keys</c> names under <paramref name="root"/>, whatever else the policy says; none
    /// when it names none.
    /// </summary>
    public static IReadOnlyList<string> KeyFilesNamedIn(YamlMappingNode? root)
    {
        var identity = YamlReader.Get(root, "identity") as YamlMappingNode;
        return YamlReader.Get(YamlReader.Get(identity, "jwt") as YamlMappingNode, "keys") switch
        {
            YamlScalarNode { Value: { } one } => [one],
            YamlSequenceNode list => [.. list.Children.OfType<YamlScalarNode>().Select(k => k.Value).OfType<string>()],
            _ => [],
        };
    }

    private static IdentityRead ReadJwt(YamlReader reader, YamlMappingNode map, PlanSet plans)
    {
        var errorsBefore = reader.Errors.Count;
        var options = new JwtIdentityOptions
        {
            Authority = reader.String(map, "authority", Field),
            JwksUri = reader.String(map, "jwks_url", Field),
            SymmetricSecret = reader.String(map, "secret", Field),
            PlanClaim = reader.String(map, "plan", Field) ?? "plan",

            // The top-level default plan is the tokens' too, unless the section names its own.
            DefaultPlan = reader.String(map, "default_plan", Field) ?? plans.DefaultPlan,
            ClockSkew = reader.Duration(map, "clock_skew", Field, TimeSpan.Zero, TimeSpan.FromMinutes(5)) ?? TimeSpan.FromSeconds(30),
            RequireHttpsMetadata = reader.Bool(map, "require_https", Field) ?? true,
        };
        plans.CheckName(reader, YamlReader.Get(map, "default_plan"), $"{Field}.default_plan");
        AddAll(options.Issuers, reader.StringList(map, "issuer", Field).Concat(reader.StringList(map, "issuers", Field)));
        AddAll(options.Audiences, reader.StringList(map, "audience", Field).Concat(reader.StringList(map, "audiences", Field)));
        AddAll(options.SubjectClaims, reader.StringList(map, "subject", Field));
        var algorithms = reader.StringList(map, "algorithms", Field);
        AddAll(options.Algorithms, algorithms);
        var keyFiles = reader.StringList(map, "keys", Field);

        var sources = (options.Authority is null ? 0 : 1) + (options.JwksUri is null ? 0 : 1) + (keyFiles.Count > 0 ? 1 : 0) + (options.SymmetricSecret is null ? 0 : 1);
        if (sources == 0)
        {
            reader.Error(map, Field, "name where keys come from: authority (OIDC discovery), jwks_url, keys (files) or secret (HS*).");
        }

        foreach (var (name, url) in new[] { ("authority", options.Authority), ("jwks_url", options.JwksUri) })
        {
            if (url is not null && !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && !options.RequireHttpsMetadata))))
            {
                reader.Error(YamlReader.Get(map, name), $"{Field}.{name}", $"'{url}' must be an https:// URL (http:// only with require_https: false).");
            }
        }

        var keyFilesFingerprint = ReadKeyFiles(reader, keyFiles, options);
        if (options.Audiences.Count == 0)
        {
            reader.Error(map, $"{Field}.audiences", "name at least one accepted audience; a token for another API must not pass.");
        }

        if (options.SymmetricSecret is { Length: < 32 })
        {
            reader.Error(YamlReader.Get(map, "secret"), $"{Field}.secret", "an HS* secret must be at least 32 characters.");
        }

        foreach (var (algorithm, node) in algorithms)
        {
            if (!JwtIdentityOptions.SupportedAlgorithms.Contains(algorithm, StringComparer.Ordinal))
            {
                reader.Error(node, $"{Field}.algorithms", $"'{algorithm}' is not accepted: use RS256/384/512, PS256/384/512, ES256/384/512, or HS256/384/512 with a secret.");
            }
            else if (algorithm.StartsWith("HS", StringComparison.Ordinal) && options.SymmetricSecret is null)
            {
                reader.Error(node, $"{Field}.algorithms", $"'{algorithm}' needs a secret.");
            }
        }

        if (reader.Errors.Count == errorsBefore)
        {
            // The resolver's own checks, so that `floodgate check` finds what starting the gateway would refuse.
            foreach (var problem in options.Validate())
            {
                reader.Error(map, Field, problem);
            }
        }

        // The resolver is rebuilt on a reload only when this changes: the section's values, the default plan it inherits,
        // and the key files' contents.
        var version = YamlFingerprint.Of(map, options.DefaultPlan, keyFilesFingerprint);
        return new IdentityRead(options, [.. keyFiles.Select(k => k.Value)], keyFilesFingerprint, version);
    }

    /// <summary>
    /// Reads each key file into <paramref name="options"/>' keys, checked on its own with the resolver's readers so that
    /// a message names the file (and, in a PEM file of several blocks, the block); the resolver then finds nothing left to
    /// refuse in them. Returns a hash of the files' contents.
    /// </summary>
    private static string ReadKeyFiles(YamlReader reader, List<(string Value, YamlNode Node)> files, JwtIdentityOptions options)
    {
        using var fingerprint = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (file, node) in files)
        {
            byte[] content;
            try
            {
                content = File.ReadAllBytes(PolicyLoader.ExpandHome(file));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                reader.Error(node, KeysField, File.Exists(PolicyLoader.ExpandHome(file)) ? $"the key file '{file}' cannot be read: {e.Message}" : $"the key file '{file}' does not exist.");
                continue;
            }

            fingerprint.AppendData(SHA256.HashData(content));
            string text;
            using (var decoder = new StreamReader(new MemoryStream(content), Encoding.UTF8, detectEncodingFromByteOrderMarks: true))
            {
                text = decoder.ReadToEnd();
            }

            // The resolver's own readers, so that what the loader accepts the resolver takes; the messages name the file.
            IReadOnlyList<string> problems;
            var source = $"key file '{file}'";
            if (text.TrimStart().StartsWith('{'))
            {
                if (options.JsonWebKeySet is not null)
                {
                    reader.Error(node, KeysField, $"'{file}' is a second JWKS file; put every JSON key in one JWKS file (PEM files may be several).");
                    continue;
                }

                problems = JwtIdentityOptionsValidator.CheckJsonWebKeySet(text, source);
                options.JsonWebKeySet = text;
            }
            else
            {
                problems = JwtIdentityOptionsValidator.CheckPublicKeysPem(text, source);
                options.PublicKeysPem.Add(text);
            }

            foreach (var problem in problems)
            {
                reader.Error(node, KeysField, problem);
            }
        }

        return Convert.ToHexStringLower(fingerprint.GetHashAndReset());
    }

    private static void AddAll(ICollection<string> target, IEnumerable<(string Value, YamlNode Node)> values)
    {
        foreach (var (value, _) in values)
        {
            target.Add(value);
        }
    }
}

/// <summary>What the <c>identity.jwt</c> section says.</summary>
/// <param name="Jwt">The resolver's options, key files read; <see langword="null"/> without the section.</param>
/// <param name="KeyFiles">The key files, as named: watched, so that a rotated key is put in force.</param>
/// <param name="KeyFilesFingerprint">A hash of the key files' contents; empty without the section.</param>
/// <param name="Version">A fingerprint of the section, the default plan it inherits and the key files' contents; empty without the section.</param>
internal sealed record IdentityRead(JwtIdentityOptions? Jwt, IReadOnlyList<string> KeyFiles, string KeyFilesFingerprint, string Version)
{
    public static IdentityRead None { get; } = new(null, [], string.Empty, string.Empty);
}
