using System.Text;
using Floodgate.Gateway.Events;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The <c>events</c> section: where threshold events are POSTed (<c>webhooks</c>, each with a signing secret read from a
/// file or an environment variable), and how deliveries queue and retry.
/// </summary>
internal static class EventsSection
{
    /// <summary>The fewest characters a signing secret may have.</summary>
    public const int MinSecretLength = 16;

    public static ThresholdEventSettings Read(YamlReader reader, YamlMappingNode root)
    {
        var events = reader.Map(YamlReader.Get(root, "events"), "events", "webhooks", "queue", "retries", "timeout", "retry_delay");
        if (events is null)
        {
            return ThresholdEventSettings.None;
        }

        var defaults = ThresholdEventSettings.None;
        var queue = (int)(reader.Integer(events, "queue", "events", 1, 1_000_000) ?? defaults.QueueCapacity);
        var retries = (int)(reader.Integer(events, "retries", "events", 0, 20) ?? defaults.Retries);
        var timeout = reader.Duration(events, "timeout", "events", TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(1)) ?? defaults.Timeout;
        var retryDelay = reader.Duration(events, "retry_delay", "events", TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(10)) ?? defaults.RetryDelay;
        var webhooks = new List<Webhook>();
        if (YamlReader.Get(events, "webhooks") is { } node && !YamlReader.IsNull(node))
        {
            if (node is not YamlSequenceNode list)
            {
                reader.Error(node, "events.webhooks", "expected a list such as - { url: https://hooks.example.com/floodgate, secret_file: /run/secrets/webhook }.");
            }
            else
            {
                for (var i = 0; i < list.Children.Count; i++)
                {
                    if (ReadWebhook(reader, list.Children[i], $"events.webhooks[{i}]") is { } webhook)
                    {
                        webhooks.Add(webhook);
                    }
                }
            }
        }

        return new ThresholdEventSettings(webhooks, queue, retries, timeout, retryDelay);
    }

    private static Webhook? ReadWebhook(YamlReader reader, YamlNode node, string field)
    {
        var map = reader.Map(node, field, "url", "secret_file", "secret_env");
        if (map is null)
        {
            reader.Error(node, field, "expected a mapping of url and secret_file or secret_env.");
            return null;
        }

        var url = reader.String(map, "url", field);
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            reader.Error(YamlReader.Get(map, "url") ?? map, $"{field}.url", $"'{url}' is not an http or https URL.");
            return null;
        }

        var file = reader.String(map, "secret_file", field);
        var env = reader.String(map, "secret_env", field);
        if ((file is null) == (env is null))
        {
            reader.Error(map, field, "needs exactly one of secret_file or secret_env: the key each delivery is signed with.");
            return null;
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
                reader.Error(YamlReader.Get(map, "secret_file"), $"{field}.secret_file", $"cannot be read: {e.Message}");
                return null;
            }
        }
        else
        {
            secret = Environment.GetEnvironmentVariable(env!)?.Trim();
        }

        if (string.IsNullOrEmpty(secret) || secret.Length < MinSecretLength)
        {
            var key = file is null ? "secret_env" : "secret_file";
            reader.Error(YamlReader.Get(map, key), $"{field}.{key}", $"the secret must be at least {MinSecretLength} characters, such as the output of: openssl rand -hex 32.");
            return null;
        }

        return new Webhook(uri, Encoding.UTF8.GetBytes(secret));
    }
}
