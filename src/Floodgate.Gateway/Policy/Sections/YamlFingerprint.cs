using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// A hash of a YAML section as its values give it: comments, layout, quoting and the order of a mapping's keys do not
/// count, so that a reload tells a changed section from one merely rewritten.
/// </summary>
internal static class YamlFingerprint
{
    /// <summary>The fingerprint of <paramref name="node"/> and of <paramref name="more"/>, what else the section depends on.</summary>
    public static string Of(YamlNode? node, params string?[] more)
    {
        var text = new StringBuilder();
        Append(text, node);
        foreach (var value in more)
        {
            text.Append('|');
            AppendScalar(text, value);
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static void Append(StringBuilder text, YamlNode? node)
    {
        switch (node)
        {
            case YamlScalarNode scalar:
                AppendScalar(text, YamlReader.IsNull(scalar) ? null : scalar.Value);
                break;
            case YamlSequenceNode sequence:
                text.Append('[');
                foreach (var child in sequence.Children)
                {
                    Append(text, child);
                }

                text.Append(']');
                break;
            case YamlMappingNode mapping:
                text.Append('{');
                foreach (var (key, value) in mapping.Children.Select(p => (Key: Canonical(p.Key), Value: Canonical(p.Value))).OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    text.Append(key).Append(value);
                }

                text.Append('}');
                break;
            default:
                AppendScalar(text, null);
                break;
        }
    }

    private static string Canonical(YamlNode node)
    {
        var text = new StringBuilder();
        Append(text, node);
        return text.ToString();
    }

    // Length-prefixed, so that no two different values read the same; null apart from any text.
    private static void AppendScalar(StringBuilder text, string? value) =>
        _ = value is null ? text.Append('~') : text.Append(value.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(value);
}
