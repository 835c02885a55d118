using System.Text.Json;

namespace Floodgate.ApiKeys;

/// <summary>
/// A key's record as JSON, the form a remote store keeps it in: <c>{"id":"k3v9x0m2q7ab","hash":"…","subject":"alice",
/// "account":"acme","plan":"pro","created_at":1767225600000,…}</c> (times in Unix milliseconds, hashes in hex). Never
/// the secret.
/// </summary>
public static class ApiKeyJson
{
    /// <summary>Writes <paramref name="record"/> as JSON; the same record always gives the same text.</summary>
    public static string Write(ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", record.Id);
            json.WriteString("hash", Convert.ToHexStringLower(record.Hash));
            json.WriteString("subject", record.Subject);
            if (record.Account is not null)
            {
                json.WriteString("account", record.Account);
            }

            if (record.Plan is not null)
            {
                json.WriteString("plan", record.Plan);
            }

            json.WriteNumber("created_at", record.CreatedAt.ToUnixTimeMilliseconds());
            Time(json, "expires_at", record.ExpiresAt);
            if (record.HasPrevious)
            {
                json.WriteString("previous_hash", Convert.ToHexStringLower(record.PreviousHash));
                Time(json, "previous_valid_until", record.PreviousValidUntil);
            }

            Time(json, "rotated_at", record.RotatedAt);
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);

        static void Time(Utf8JsonWriter json, string name, DateTimeOffset? at)
        {
            if (at is { } value)
            {
                json.WriteNumber(name, value.ToUnixTimeMilliseconds());
            }
        }
    }

    /// <summary>Reads a record written by <see cref="Write"/>; <see langword="null"/> when the text is not one.</summary>
    public static ApiKeyRecord? Read(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            return new ApiKeyRecord(
                root.GetProperty("id").GetString()!,
                Convert.FromHexString(root.GetProperty("hash").GetString()!),
                root.GetProperty("subject").GetString()!,
                root.TryGetProperty("account", out var account) ? account.GetString() : null,
                root.TryGetProperty("plan", out var plan) ? plan.GetString() : null,
                DateTimeOffset.FromUnixTimeMilliseconds(root.GetProperty("created_at").GetInt64()),
                Time(root, "expires_at"),
                root.TryGetProperty("previous_hash", out var previous) ? Convert.FromHexString(previous.GetString()!) : null,
                Time(root, "previous_valid_until"),
                Time(root, "rotated_at"));
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            return null;
        }

        static DateTimeOffset? Time(JsonElement root, string name) =>
            root.TryGetProperty(name, out var value) ? DateTimeOffset.FromUnixTimeMilliseconds(value.GetInt64()) : null;
    }
}
