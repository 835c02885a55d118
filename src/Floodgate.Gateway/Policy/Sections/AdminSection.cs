using System.Security.Cryptography.X509Certificates;
using Floodgate.Gateway.Admin.Auth;
using Floodgate.Tls;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The <c>admin</c> section: the named bearer tokens that may call the admin API, each read from a file or an environment
/// variable when the policy is loaded, so that no secret sits in the policy itself; and, optionally, the client
/// certificates the admin port also requires (<c>client_certificates: { ca_file, thumbprints }</c>).
/// </summary>
internal static class AdminSection
{
    /// <summary>The fewest characters a token may have: shorter ones can be guessed.</summary>
    public const int MinTokenLength = 16;

    public static (AdminTokenSet Tokens, AdminClientCertificates? ClientCertificates) Read(YamlReader reader, YamlMappingNode root)
    {
        var admin = reader.Map(YamlReader.Get(root, "admin"), "admin", "tokens", "client_certificates");
        return (ReadTokens(reader, admin), ReadClientCertificates(reader, admin));
    }

    private static AdminClientCertificates? ReadClientCertificates(YamlReader reader, YamlMappingNode? admin)
    {
        const string field = "admin.client_certificates";
        var node = YamlReader.Get(admin, "client_certificates");
        if (node is null || YamlReader.IsNull(node))
        {
            return null;
        }

        var map = reader.Map(node, field, "ca_file", "thumbprints");
        if (map is null)
        {
            reader.Error(node, field, "expected a mapping of ca_file (a PEM file of certificate authorities) and/or thumbprints (SHA-256).");
            return null;
        }

        X509Certificate2Collection? authorities = null;
        if (reader.String(map, "ca_file", field) is { } caFile)
        {
            var path = PolicyLoader.ExpandHome(caFile);
            path = Path.IsPathRooted(path) ? path : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(reader.File)) ?? ".", path);
            authorities = PemCertificates.ReadAuthorities(path, out var problem);
            if (authorities is null)
            {
                reader.Error(YamlReader.Get(map, "ca_file"), $"{field}.ca_file", $"'{caFile}' {problem}");
                return null;
            }
        }

        var thumbprints = new List<byte[]>();
        foreach (var (text, item) in reader.StringList(map, "thumbprints", field))
        {
            var hex = text.Replace(":", string.Empty, StringComparison.Ordinal);
            if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
            {
                reader.Error(item, $"{field}.thumbprints", $"'{text}' is not a SHA-256 thumbprint: 64 hexadecimal digits (colons allowed), such as the output of: openssl x509 -noout -fingerprint -sha256 -in client.pem.");
                continue;
            }

            thumbprints.Add(Convert.FromHexString(hex));
        }

        if (authorities is null && thumbprints.Count == 0)
        {
            reader.Error(map, field, "needs ca_file, thumbprints or both: the client certificates the admin port admits.");
            return null;
        }

        return new AdminClientCertificates(authorities, thumbprints);
    }

    private static AdminTokenSet ReadTokens(YamlReader reader, YamlMappingNode? admin)
    {
        var tokensNode = YamlReader.Get(admin, "tokens");
        if (tokensNode is null || YamlReader.IsNull(tokensNode))
        {
            return AdminTokenSet.None;
        }

        if (tokensNode is not YamlSequenceNode list)
        {
            reader.Error(tokensNode, "admin.tokens", "expected a list of tokens such as - { name: ops, file: /run/secrets/floodgate-admin }.");
            return AdminTokenSet.None;
        }

        var tokens = new List<AdminToken>();
        for (var i = 0; i < list.Children.Count; i++)
        {
            var field = $"admin.tokens[{i}]";
            var map = reader.Map(list.Children[i], field, "name", "file", "env");
            if (map is null)
            {
                reader.Error(list.Children[i], field, "expected a mapping of name and file or env.");
                continue;
            }

            var name = reader.String(map, "name", field);
            var file = reader.String(map, "file", field);
            var env = reader.String(map, "env", field);
            if (string.IsNullOrWhiteSpace(name))
            {
                reader.Error(map, $"{field}.name", "is required: the name the admin log gives every change made with this token.");
                continue;
            }

            if (tokens.Any(t => t.Name == name))
            {
                reader.Error(YamlReader.Get(map, "name"), $"{field}.name", $"'{name}' names two tokens; each token's name must be unique.");
                continue;
            }

            if ((file is null) == (env is null))
            {
                reader.Error(map, field, "needs exactly one of file (a file holding the token) or env (an environment variable holding it).");
                continue;
            }

            string? secret;
            if (file is not null)
            {
                var path = PolicyLoader.ExpandHome(file);
                try
                {
                    secret = File.ReadAllText(Path.IsPathRooted(path) ? path : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(reader.File)) ?? ".", path)).Trim();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
                {
                    reader.Error(YamlReader.Get(map, "file"), $"{field}.file", $"cannot be read: {e.Message}");
                    continue;
                }
            }
            else
            {
                secret = Environment.GetEnvironmentVariable(env!)?.Trim();
                if (string.IsNullOrEmpty(secret))
                {
                    reader.Error(YamlReader.Get(map, "env"), $"{field}.env", $"the environment variable {env} is not set or empty.");
                    continue;
                }
            }

            if (secret.Length < MinTokenLength || secret.Any(char.IsWhiteSpace))
            {
                reader.Error(YamlReader.Get(map, file is null ? "env" : "file"), $"{field}.{(file is null ? "env" : "file")}", $"the token must be at least {MinTokenLength} characters with no spaces, such as the output of: openssl rand -hex 32.");
                continue;
            }

            tokens.Add(AdminToken.Create(name, secret));
        }

        return new AdminTokenSet(tokens);
    }
}
