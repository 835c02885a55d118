using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// How requests are read and responses written: <c>trusted_proxies</c> and <c>forwarded_header</c> (who the client
/// is), <c>headers</c> (which limit headers responses carry).
/// </summary>
internal static class HttpSection
{
    public static void Read(YamlReader reader, YamlMappingNode root, FloodgateOptions floodgate)
    {
        foreach (var (range, node) in reader.StringList(root, "trusted_proxies", string.Empty))
        {
            try
            {
                TrustedProxies.ParseRange(range);
                floodgate.TrustedProxies.Add(range);
            }
            catch (FormatException e)
            {
                reader.Error(node, "trusted_proxies", e.Message);
            }
        }

        floodgate.ForwardedHeader = reader.Enum(root, "forwarded_header", string.Empty, ("x-forwarded-for", ForwardedHeader.XForwardedFor), ("forwarded", ForwardedHeader.Forwarded))
            ?? ForwardedHeader.XForwardedFor;
        var headers = reader.Map(YamlReader.Get(root, "headers"), "headers", "ietf", "legacy", "x_ratelimit", "legacy_reset");
        var legacy = reader.Bool(headers, "legacy", "headers") ?? reader.Bool(headers, "x_ratelimit", "headers") ?? false;
        var reset = reader.Enum(headers, "legacy_reset", "headers", ("seconds", RateLimitResetFormat.DeltaSeconds), ("epoch", RateLimitResetFormat.UnixSeconds));
        if (reset is not null && !legacy)
        {
            // Said nowhere else: without the legacy headers there is no X-RateLimit-Reset to format.
            reader.Error(YamlReader.Get(headers, "legacy_reset"), "headers.legacy_reset", "sets the format of X-RateLimit-Reset, which only legacy: true sends; set legacy: true or remove legacy_reset.");
        }

        floodgate.Headers = new RateLimitHeaderOptions
        {
            Ietf = reader.Bool(headers, "ietf", "headers") ?? true,
            Legacy = legacy,
            LegacyReset = reset ?? RateLimitResetFormat.DeltaSeconds,
        };
    }
}
