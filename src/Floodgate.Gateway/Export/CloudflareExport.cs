using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Floodgate.Gateway.Export;

/// <summary>
/// The edge rules as Cloudflare rate limiting rules: one <c>cloudflare_ruleset</c> (kind <c>zone</c>, phase
/// <c>http_ratelimit</c>) in Terraform's JSON syntax (a <c>.tf.json</c> file), each rule's expression from its match,
/// characteristics from its key (with <c>cf.colo.id</c>, which Cloudflare requires), its period and count, and its ban
/// as the mitigation timeout.
/// </summary>
internal static class CloudflareExport
{
    private const string Target = "cloudflare";

    /// <summary>The periods Cloudflare offers, in seconds (all of them on Enterprise; fewer on other plans).</summary>
    public static readonly long[] Periods = [10, 60, 120, 300, 600, 3600];

    /// <summary>The mitigation timeouts Cloudflare offers, in seconds.</summary>
    public static readonly long[] MitigationTimeouts = [0, 10, 60, 120, 300, 600, 3600, 86400];

    public static string Write(IReadOnlyList<EdgeRuleShape> shapes, List<string> warnings, List<string> errors, bool allowLooser)
    {
        var rules = new JsonArray();
        foreach (var shape in shapes)
        {
            if (EdgeExport.Window(shape, Target, Periods, 1, int.MaxValue, allowLooser, warnings, errors) is not var (period, count))
            {
                continue;
            }

            var characteristics = new JsonArray("cf.colo.id");
            if (shape.KeysClientIp)
            {
                characteristics.Add("ip.src");
            }

            foreach (var header in shape.KeyHeaders)
            {
                characteristics.Add($"http.request.headers[{Quote(header)}]");
            }

            if (!shape.KeysClientIp && shape.KeyHeaders.Count == 0)
            {
                warnings.Add(EdgeExport.About(shape, Target, "is keyed on nothing (one count for every request it matches): Cloudflare counts it per data center."));
            }

            rules.Add(new JsonObject
            {
                ["ref"] = Ref(shape.Name),
                ["description"] = shape.Name,
                ["expression"] = Expression(shape, warnings),
                ["action"] = shape.Shadow ? "log" : "block",
                ["enabled"] = true,
                ["ratelimit"] = new JsonObject
                {
                    ["characteristics"] = characteristics,
                    ["period"] = period,
                    ["requests_per_period"] = count,
                    ["mitigation_timeout"] = MitigationTimeout(shape, period, warnings),
                },
            });
        }

        if (shapes.Any(s => s.Shadow))
        {
            warnings.Add("cloudflare: shadow rules are exported with the action log, which Cloudflare offers on Enterprise plans only.");
        }

        warnings.Add("cloudflare: every rule is counted per Cloudflare data center (cf.colo.id), as Cloudflare requires: a client spread across data centers gets a budget in each.");
        var document = new JsonObject
        {
            ["variable"] = new JsonObject { ["zone_id"] = new JsonObject { ["type"] = "string", ["description"] = "The Cloudflare zone the rules apply to." } },
            ["resource"] = new JsonObject
            {
                ["cloudflare_ruleset"] = new JsonObject
                {
                    ["floodgate_edge"] = new JsonObject
                    {
                        ["zone_id"] = "${var.zone_id}",
                        ["name"] = "Floodgate edge rules",
                        ["description"] = "Exported by floodgate export from the edge tier of a Floodgate policy.",
                        ["kind"] = "zone",
                        ["phase"] = "http_ratelimit",
                        ["rules"] = rules,
                    },
                },
            },
        };
        return document.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
    }

    private static long MitigationTimeout(EdgeRuleShape shape, long period, List<string> warnings)
    {
        if (shape.Ban is not { } ban)
        {
            // Floodgate rejects only until the budget refills; Cloudflare's throttling (0) is Enterprise's, so a block for
            // one period, a little stricter, is the nearest that every plan offers.
            warnings.Add(EdgeExport.About(shape, Target, string.Create(CultureInfo.InvariantCulture, $"has no ban: exported with a mitigation timeout of one period ({period} s), as Cloudflare blocks for a time once the count is over (stricter than refilling).")));
            return period;
        }

        var seconds = (long)Math.Ceiling(ban.TotalSeconds);
        var offered = MitigationTimeouts.Where(t => t >= seconds).DefaultIfEmpty(MitigationTimeouts[^1]).Min();
        if (offered != seconds)
        {
            warnings.Add(EdgeExport.About(shape, Target, string.Create(CultureInfo.InvariantCulture, $"a ban of {seconds} s is not offered: exported as a mitigation timeout of {offered} s ({(offered > seconds ? "stricter" : "LOOSER")}).")));
        }

        return offered;
    }

    private static string Expression(EdgeRuleShape shape, List<string> warnings)
    {
        var parts = new List<string>();
        var match = shape.Match;
        if (shape.Paths.Count > 0)
        {
            var paths = shape.Paths.Select(p => p.Kind switch
            {
                PathKind.Exact => p.Value == "/"
                    ? "lower(http.request.uri.path) eq \"/\""
                    : $"(lower(http.request.uri.path) eq {Quote(p.Value)} or lower(http.request.uri.path) eq {Quote(p.Value + "/")})",
                PathKind.Prefix => $"(lower(http.request.uri.path) eq {Quote(p.Value.Length == 0 ? "/" : p.Value)} or starts_with(lower(http.request.uri.path), {Quote(p.Value + "/")}))",
                _ => $"lower(http.request.uri.path) matches {Quote(p.Value)}",
            }).ToList();
            parts.Add(paths.Count == 1 ? paths[0] : $"({string.Join(" or ", paths)})");
            if (shape.Paths.Any(p => p.Kind == PathKind.Regex))
            {
                warnings.Add(EdgeExport.About(shape, Target, "a path pattern with wildcards is exported as a regular expression (matches), which Cloudflare offers on Business and Enterprise plans."));
            }
        }

        if (match.Methods.Count > 0)
        {
            parts.Add($"http.request.method in {{{string.Join(' ', match.Methods.Select(Quote))}}}");
        }

        if (match.Hosts.Count > 0)
        {
            var hosts = match.Hosts.Select(h => h.StartsWith("*.", StringComparison.Ordinal)
                ? $"ends_with(lower(http.host), {Quote(h[1..].ToLowerInvariant())})"
                : $"lower(http.host) eq {Quote(h.ToLowerInvariant())}").ToList();
            parts.Add(hosts.Count == 1 ? hosts[0] : $"({string.Join(" or ", hosts)})");
        }

        foreach (var (name, value) in match.Headers)
        {
            var header = name.ToLowerInvariant();
            parts.Add(value == "*"
                ? $"any(http.request.headers.names[*] eq {Quote(header)})"
                : $"any(lower(http.request.headers[{Quote(header)}][*])[*] eq {Quote(value.ToLowerInvariant())})");
        }

        if (match.Condition is not null)
        {
            var present = $"any(http.request.headers.names[*] eq {Quote(shape.RateLimitIdHeader)})";
            parts.Add(match.Condition == AspNetCore.RateLimitIds.RateLimitIdConditions.Verified ? present : $"not {present}");
        }

        return parts.Count == 0 ? "true" : string.Join(" and ", parts);
    }

    /// <summary>A string literal of Cloudflare's rules language.</summary>
    private static string Quote(string text)
    {
        var quoted = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            quoted.Append(c is '"' or '\\' ? "\\" + c : c.ToString());
        }

        return quoted.Append('"').ToString();
    }

    /// <summary>A stable rule reference: the rule's name in lower case, other characters as '_'.</summary>
    private static string Ref(string name) =>
        "floodgate_" + new string([.. name.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);
}
