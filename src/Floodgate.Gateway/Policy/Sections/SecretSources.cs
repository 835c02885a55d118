using System.Security.Cryptography;
using System.Text;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// Secrets a policy names by <c>file</c> or <c>env</c> rather than holding them: read when the policy is loaded, the
/// files remembered so the watcher reloads the policy when one changes, and their contents folded into the policy's
/// version so that a changed secret is a new policy.
/// </summary>
internal sealed class SecretSources(YamlReader reader)
{
    private readonly List<string> _files = [];
    private readonly StringBuilder _fingerprint = new();

    /// <summary>The files read, as full paths.</summary>
    public IReadOnlyList<string> Files => _files;

    /// <summary>A hash of every secret read, in order (never the secrets themselves).</summary>
    public string Fingerprint => _fingerprint.Length == 0 ? string.Empty : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(_fingerprint.ToString())));

    /// <summary>
    /// The secrets in <c>file</c> (one per non-empty line, so a file can hold the current and the previous one while it
    /// is rotated) or <c>env</c> (one) of <paramref name="map"/>: exactly one of them must be given. None (reported)
    /// when neither or both are, when the file cannot be read or the variable is unset, or a secret is shorter than
    /// <paramref name="minLength"/>.
    /// </summary>
    public List<string> Read(YamlMappingNode map, string field, int minLength)
    {
        var file = reader.String(map, "file", field);
        var env = reader.String(map, "env", field);
        if ((file is null) == (env is null))
        {
            reader.Error(map, field, "needs exactly one of file (a file holding the secret) or env (an environment variable holding it).");
            return [];
        }

        List<string> secrets;
        var source = file is null ? "env" : "file";
        if (file is not null)
        {
            var path = PolicyLoader.ExpandHome(file);
            path = Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(reader.File)) ?? ".", path));
            _files.Add(path);
            try
            {
                secrets = [.. File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0)];
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                reader.Error(YamlReader.Get(map, "file"), $"{field}.file", $"cannot be read: {e.Message}");
                return [];
            }

            if (secrets.Count == 0)
            {
                reader.Error(YamlReader.Get(map, "file"), $"{field}.file", $"{path} holds no secret.");
                return [];
            }
        }
        else
        {
            var value = Environment.GetEnvironmentVariable(env!)?.Trim();
            if (string.IsNullOrEmpty(value))
            {
                reader.Error(YamlReader.Get(map, "env"), $"{field}.env", $"the environment variable {env} is not set or empty.");
                return [];
            }

            secrets = [value];
        }

        foreach (var secret in secrets)
        {
            if (secret.Length < minLength || secret.Any(char.IsWhiteSpace))
            {
                reader.Error(YamlReader.Get(map, source), $"{field}.{source}", $"a secret must be at least {minLength} characters with no spaces, such as the output of: openssl rand -hex 32.");
                return [];
            }

            _fingerprint.Append(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)))).Append('\n');
        }

        return secrets;
    }
}
