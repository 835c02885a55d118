using System.Text.Json;
using Floodgate.Limits;

namespace Floodgate.Overrides;

/// <summary>
/// An override as JSON, the form a remote store keeps it in:
/// <c>{"subject":"alice","plan":"pro","rates":{"per-user":"1000/min"},"expires_at":1767225600000}</c>
/// (<c>expires_at</c> in Unix milliseconds).
/// </summary>
public static class OverrideJson
{
    /// <summary>Writes <paramref name="value"/> as JSON.</summary>
    public static string Write(RateLimitOverride value)
    {
        ArgumentNullException.ThrowIfNull(value);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString(value.IsAccount ? "account" : "subject", value.Subject);
            if (value.Plan is not null)
            {
                json.WriteString("plan", value.Plan);
            }

            if (value.Rates.Count > 0)
            {
                json.WriteStartObject("rates");
                foreach (var (rule, rate) in value.Rates.OrderBy(r => r.Key, StringComparer.Ordinal))
                {
                    json.WriteString(rule, rate.ToString());
                }

                json.WriteEndObject();
            }

            if (value.ExpiresAt is { } at)
            {
                json.WriteNumber("expires_at", at.ToUnixTimeMilliseconds());
            }

            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Reads an override written by <see cref="Write"/>; <see langword="null"/> when the text is not one.</summary>
    public static RateLimitOverride? Read(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            var account = root.TryGetProperty("account", out var a) ? a.GetString() : null;
            var subject = account ?? root.GetProperty("subject").GetString()!;
            var plan = root.TryGetProperty("plan", out var p) ? p.GetString() : null;
            Dictionary<string, Rate>? rates = null;
            if (root.TryGetProperty("rates", out var r))
            {
                rates = new Dictionary<string, Rate>(StringComparer.Ordinal);
                foreach (var rule in r.EnumerateObject())
                {
                    rates[rule.Name] = Rate.Parse(rule.Value.GetString()!);
                }
            }

            DateTimeOffset? expiresAt = root.TryGetProperty("expires_at", out var e) ? DateTimeOffset.FromUnixTimeMilliseconds(e.GetInt64()) : null;
            return account is not null ? RateLimitOverride.ForAccount(account, plan, rates, expiresAt) : new RateLimitOverride(subject, plan, rates, expiresAt);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            return null;
        }
    }
}
