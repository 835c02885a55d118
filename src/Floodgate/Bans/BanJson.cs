using System.Text.Json;

namespace Floodgate.Bans;

/// <summary>
/// A ban as JSON, the form a remote store keeps it in:
/// <c>{"kind":"ip","target":"203.0.113.7","source":"admin","created_at":1767225000000,"expires_at":1767225600000}</c>
/// (times in Unix milliseconds).
/// </summary>
public static class BanJson
{
    /// <summary>Writes <paramref name="ban"/> as JSON.</summary>
    public static string Write(Ban ban)
    {
        ArgumentNullException.ThrowIfNull(ban);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("kind", Ban.KindName(ban.Kind));
            json.WriteString("target", ban.Target);
            json.WriteString("source", ban.Source);
            json.WriteNumber("created_at", ban.CreatedAt.ToUnixTimeMilliseconds());
            json.WriteNumber("expires_at", ban.ExpiresAt.ToUnixTimeMilliseconds());
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Reads a ban written by <see cref="Write"/>; <see langword="null"/> when the text is not one.</summary>
    public static Ban? Read(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (!Ban.TryParseKind(root.GetProperty("kind").GetString(), out var kind)
                || !Ban.TryCanonical(kind, root.GetProperty("target").GetString(), out var target, out _))
            {
                return null;
            }

            return new Ban(
                kind,
                target,
                root.GetProperty("source").GetString() ?? Ban.AdminSource,
                DateTimeOffset.FromUnixTimeMilliseconds(root.GetProperty("created_at").GetInt64()),
                DateTimeOffset.FromUnixTimeMilliseconds(root.GetProperty("expires_at").GetInt64()));
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            return null;
        }
    }
}
