using System.Text;
using Floodgate.AspNetCore;
using Floodgate.AspNetCore.RateLimitIds;
using Microsoft.AspNetCore.Http;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// The <c>ratelimit_id</c> section: the verifiable rate-limit id's header, keys (current first, then previous; each
/// secret from a file or the environment, watched), claims, endpoint classes, issue endpoint and answer to a wrong id,
/// read into <see cref="FloodgateOptions.RateLimitId"/> (docs/edge.md).
/// </summary>
internal static class RateLimitIdSection
{
    public static void Read(YamlReader reader, YamlMappingNode root, SecretSources secrets, FloodgateOptions floodgate)
    {
        const string Field = "ratelimit_id";
        var map = reader.Map(YamlReader.Get(root, Field), Field, "header", "keys", "claims", "endpoints", "issue", "on_invalid");
        if (map is null)
        {
            // A rule that matches on the id would never see one verified: no id is without this section.
            foreach (var rule in floodgate.Policy.Rules)
            {
                if (rule.Match.Condition is { } condition && (condition == RateLimitIdConditions.Verified || condition == RateLimitIdConditions.Absent))
                {
                    reader.Error(root, $"{rule.Name}.match.ratelimit_id", "needs a ratelimit_id section: without its keys no id is ever verified.");
                }
            }

            return;
        }

        var options = new RateLimitIdOptions
        {
            HeaderName = reader.String(map, "header", Field) ?? RateLimitId.DefaultHeader,
            OnInvalid = reader.Enum(map, "on_invalid", Field, ("ignore", InvalidRateLimitIdAction.Ignore), ("unauthorized", InvalidRateLimitIdAction.Unauthorized), ("too_many_requests", InvalidRateLimitIdAction.TooManyRequests))
                ?? InvalidRateLimitIdAction.Ignore,
        };
        foreach (var (claim, _) in reader.StringList(map, "claims", Field))
        {
            options.Claims.Add(claim);
        }

        foreach (var (endpoint, _) in reader.StringList(map, "endpoints", Field))
        {
            options.EndpointClasses.Add(endpoint);
        }

        var issue = reader.Map(YamlReader.Get(map, "issue"), $"{Field}.issue", "path", "cookie");
        if (issue is not null)
        {
            var path = reader.String(issue, "path", $"{Field}.issue");
            if (path is null || !path.StartsWith('/') || path == "/")
            {
                reader.Error(YamlReader.Get(issue, "path") ?? issue, $"{Field}.issue.path", "is required: the path that issues ids, such as /.well-known/ratelimit-id.");
            }
            else
            {
                options.IssuePath = new PathString(path);
            }

            options.CookieName = reader.String(issue, "cookie", $"{Field}.issue");
        }

        var keys = YamlReader.Get(map, "keys");
        if (keys is not YamlSequenceNode list || list.Children.Count == 0)
        {
            reader.Error(keys ?? map, $"{Field}.keys", "expected a list of keys, current first: - { id: k2, file: /run/secrets/rlid-k2 } (or env: NAME); the previous key after it while ids made with it are held.");
            return;
        }

        for (var i = 0; i < list.Children.Count; i++)
        {
            var field = $"{Field}.keys[{i}]";
            var key = reader.Map(list.Children[i], field, "id", "file", "env");
            if (key is null)
            {
                reader.Error(list.Children[i], field, "expected a mapping of id and file or env.");
                continue;
            }

            var id = reader.String(key, "id", field);
            if (!RateLimitId.IsValidKeyId(id))
            {
                reader.Error(YamlReader.Get(key, "id") ?? key, $"{field}.id", $"is required: 1 to {RateLimitId.MaxKeyIdLength} of A-Z a-z 0-9 _ -, carried in each id so that a verifier picks its key.");
                continue;
            }

            var read = secrets.Read(key, field, RateLimitIdOptions.MinSecretBytes);
            if (read.Count > 1)
            {
                reader.Error(key, field, "the file holds more than one secret; a key has one (list the previous key as a key of its own, with its own id).");
                continue;
            }

            if (read.Count == 1)
            {
                options.Keys.Add(new RateLimitIdKey(id!, Encoding.UTF8.GetBytes(read[0])));
            }
        }

        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            if (options.Keys.Count > 0)
            {
                reader.Error(map, Field, PolicyLoader.MessageOf(e));
            }
        }

        floodgate.RateLimitId = options;
    }
}
