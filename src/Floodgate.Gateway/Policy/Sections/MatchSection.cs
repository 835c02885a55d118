using Floodgate.Rules;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>A rule's <c>match</c>: which requests the rule applies to.</summary>
internal static class MatchSection
{
    public static RuleMatch Read(YamlReader reader, YamlMappingNode rule, string parent)
    {
        var field = $"{parent}.match";
        var map = reader.Map(YamlReader.Get(rule, "match"), field, "path", "paths", "route", "method", "methods", "host", "hosts", "headers", "ratelimit_id");
        if (map is null)
        {
            return RuleMatch.Any;
        }

        var paths = new List<PathGlob>();
        foreach (var (path, node) in reader.StringList(map, "path", field).Concat(reader.StringList(map, "paths", field)))
        {
            try
            {
                paths.Add(new PathGlob(path));
            }
            catch (FormatException e)
            {
                reader.Error(node, $"{field}.path", e.Message);
            }
        }

        RouteTemplate? route = null;
        if (reader.String(map, "route", field) is { } template)
        {
            try
            {
                route = new RouteTemplate(template);
            }
            catch (FormatException e)
            {
                reader.Error(YamlReader.Get(map, "route"), $"{field}.route", e.Message);
            }
        }

        var methods = reader.StringList(map, "method", field).Concat(reader.StringList(map, "methods", field)).Select(m => m.Value.ToUpperInvariant()).ToList();
        var hosts = reader.StringList(map, "host", field).Concat(reader.StringList(map, "hosts", field)).Select(h => h.Value).ToList();
        // verified: the request carries a rate-limit id whose tag was verified; absent: it carries none (or a wrong one, ignored).
        var id = reader.Enum(map, "ratelimit_id", field, ("verified", true), ("absent", false));
        var condition = id is null ? null : id.Value ? Floodgate.AspNetCore.RateLimitIds.RateLimitIdConditions.Verified : Floodgate.AspNetCore.RateLimitIds.RateLimitIdConditions.Absent;
        return new RuleMatch { Paths = paths, Route = route, Methods = methods, Hosts = hosts, Headers = ReadHeaders(reader, map, field), Condition = condition };
    }

    private static Dictionary<string, string> ReadHeaders(YamlReader reader, YamlMappingNode map, string parent)
    {
        var field = $"{parent}.headers";
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var headerMap = reader.Map(YamlReader.Get(map, "headers"), field);
        if (headerMap is null)
        {
            return headers;
        }

        foreach (var (k, v) in headerMap.Children)
        {
            if (reader.KeyName(k, field) is not { } name)
            {
                continue;
            }

            if (v is YamlScalarNode { Value: { } value })
            {
                headers[name] = value;
            }
            else
            {
                reader.Error(v, $"{field}.{name}", "expected a value to equal, or * for any value.");
            }
        }

        return headers;
    }
}
