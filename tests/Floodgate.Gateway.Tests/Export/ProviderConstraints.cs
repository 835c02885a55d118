using System.Text.Json;
using System.Text.RegularExpressions;

namespace Floodgate.Gateway.Tests.Export;

/// <summary>
/// The targets' documented constraints, written down here independently of the exporter, so an export is checked
/// against what the providers accept rather than against what the exporter meant to write. Sources: Cloudflare's
/// rulesets API and Terraform provider (rate limiting rules: phase http_ratelimit, the ratelimit object's fields and
/// their allowed values, characteristics that must include cf.colo.id, the rules language); AWS WAFv2's API reference
/// (Rule, RateBasedStatement, RateLimit custom keys, ByteMatchStatement, RegexMatchStatement, SizeConstraintStatement,
/// TextTransformation, VisibilityConfig) and CloudFormation's AWS::WAFv2::WebACL.
/// </summary>
internal static partial class ProviderConstraints
{
    private static readonly long[] CloudflarePeriods = [10, 60, 120, 300, 600, 3600];
    private static readonly long[] CloudflareTimeouts = [0, 10, 60, 120, 300, 600, 3600, 86400];
    private static readonly string[] CloudflareActions = ["block", "challenge", "js_challenge", "managed_challenge", "log"];
    private static readonly long[] AwsWindows = [60, 120, 300, 600];
    private static readonly string[] AwsStatements = ["ByteMatchStatement", "RegexMatchStatement", "SizeConstraintStatement", "AndStatement", "OrStatement", "NotStatement"];
    private static readonly string[] AwsPositions = ["EXACTLY", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "CONTAINS_WORD"];
    private static readonly string[] AwsTransformations = ["NONE", "LOWERCASE", "URL_DECODE", "COMPRESS_WHITE_SPACE"];

    /// <summary>Every problem with a Terraform JSON document holding one cloudflare_ruleset for rate limiting rules.</summary>
    public static List<string> CheckCloudflare(string json)
    {
        var problems = new List<string>();
        using var document = JsonDocument.Parse(json);
        var resources = document.RootElement.GetProperty("resource").GetProperty("cloudflare_ruleset");
        foreach (var ruleset in resources.EnumerateObject())
        {
            var r = ruleset.Value;
            Expect(problems, r.GetProperty("kind").GetString() == "zone", "kind must be zone");
            Expect(problems, r.GetProperty("phase").GetString() == "http_ratelimit", "phase must be http_ratelimit");
            Expect(problems, r.TryGetProperty("zone_id", out _), "zone_id is required");
            Expect(problems, !string.IsNullOrEmpty(r.GetProperty("name").GetString()), "name is required");
            var refs = new HashSet<string>();
            foreach (var rule in r.GetProperty("rules").EnumerateArray())
            {
                var name = rule.GetProperty("description").GetString();
                Expect(problems, CloudflareActions.Contains(rule.GetProperty("action").GetString()), $"{name}: action");
                Expect(problems, refs.Add(rule.GetProperty("ref").GetString()!), $"{name}: ref must be unique");
                var expression = rule.GetProperty("expression").GetString()!;
                Expect(problems, expression.Length is > 0 and <= 4096, $"{name}: expression length");
                problems.AddRange(CheckCloudflareExpression(expression).Select(p => $"{name}: {p}"));
                var limit = rule.GetProperty("ratelimit");
                var characteristics = limit.GetProperty("characteristics").EnumerateArray().Select(c => c.GetString()!).ToList();
                Expect(problems, characteristics.Contains("cf.colo.id"), $"{name}: characteristics must include cf.colo.id");
                Expect(problems, characteristics.All(c => c is "cf.colo.id" or "ip.src" || CloudflareHeaderCharacteristic().IsMatch(c)), $"{name}: unknown characteristic");
                Expect(problems, characteristics.Distinct().Count() == characteristics.Count, $"{name}: characteristics repeat");
                Expect(problems, CloudflarePeriods.Contains(limit.GetProperty("period").GetInt64()), $"{name}: period {limit.GetProperty("period")} is not offered");
                Expect(problems, limit.GetProperty("requests_per_period").GetInt64() >= 1, $"{name}: requests_per_period must be at least 1");
                Expect(problems, CloudflareTimeouts.Contains(limit.GetProperty("mitigation_timeout").GetInt64()), $"{name}: mitigation_timeout is not offered");
            }
        }

        return problems;
    }

    /// <summary>Every problem with a WebACL (the CLI's input JSON, or a CloudFormation template holding one).</summary>
    public static List<string> CheckAwsWaf(string json)
    {
        var problems = new List<string>();
        using var document = JsonDocument.Parse(json);
        var acl = document.RootElement;
        if (acl.TryGetProperty("AWSTemplateFormatVersion", out var version))
        {
            Expect(problems, version.GetString() == "2010-09-09", "AWSTemplateFormatVersion");
            var resource = acl.GetProperty("Resources").EnumerateObject().Single().Value;
            Expect(problems, resource.GetProperty("Type").GetString() == "AWS::WAFv2::WebACL", "resource type");
            acl = resource.GetProperty("Properties");
        }

        Expect(problems, acl.GetProperty("Scope").GetString() is "REGIONAL" or "CLOUDFRONT", "Scope");
        Expect(problems, AwsName().IsMatch(acl.GetProperty("Name").GetString()!), "WebACL Name");
        Expect(problems, acl.GetProperty("DefaultAction").EnumerateObject().Single().Name is "Allow" or "Block", "DefaultAction");
        CheckVisibility(problems, acl.GetProperty("VisibilityConfig"), "WebACL");
        var names = new HashSet<string>();
        var priorities = new HashSet<long>();
        foreach (var rule in acl.GetProperty("Rules").EnumerateArray())
        {
            var name = rule.GetProperty("Name").GetString()!;
            Expect(problems, AwsName().IsMatch(name), $"{name}: Name must be 1 to 128 of letters, digits, _ and -");
            Expect(problems, names.Add(name), $"{name}: Name must be unique");
            Expect(problems, priorities.Add(rule.GetProperty("Priority").GetInt64()), $"{name}: Priority must be unique");
            Expect(problems, rule.GetProperty("Action").EnumerateObject().Single().Name is "Block" or "Count" or "Captcha" or "Challenge", $"{name}: Action");
            CheckVisibility(problems, rule.GetProperty("VisibilityConfig"), name);
            var rate = rule.GetProperty("Statement").GetProperty("RateBasedStatement");
            Expect(problems, rate.GetProperty("Limit").GetInt64() is >= 10 and <= 2_000_000_000, $"{name}: Limit must be 10 to 2,000,000,000");
            Expect(problems, AwsWindows.Contains(rate.GetProperty("EvaluationWindowSec").GetInt64()), $"{name}: EvaluationWindowSec must be 60, 120, 300 or 600");
            var aggregate = rate.GetProperty("AggregateKeyType").GetString();
            Expect(problems, aggregate is "IP" or "FORWARDED_IP" or "CUSTOM_KEYS" or "CONSTANT", $"{name}: AggregateKeyType");
            var hasKeys = rate.TryGetProperty("CustomKeys", out var keys);
            Expect(problems, hasKeys == (aggregate == "CUSTOM_KEYS"), $"{name}: CustomKeys go with CUSTOM_KEYS only");
            if (hasKeys)
            {
                Expect(problems, keys.GetArrayLength() is >= 1 and <= 5, $"{name}: 1 to 5 custom keys");
                foreach (var key in keys.EnumerateArray())
                {
                    var kind = key.EnumerateObject().Single();
                    Expect(problems, kind.Name is "IP" or "Header" or "Cookie" or "QueryArgument" or "QueryString" or "HTTPMethod" or "UriPath" or "ForwardedIP" or "LabelNamespace", $"{name}: custom key {kind.Name}");
                    if (kind.Name == "Header")
                    {
                        Expect(problems, kind.Value.GetProperty("Name").GetString()!.Length is > 0 and <= 64, $"{name}: header key name");
                        CheckTransformations(problems, kind.Value.GetProperty("TextTransformations"), name);
                    }
                }
            }

            var hasScope = rate.TryGetProperty("ScopeDownStatement", out var scope);
            Expect(problems, aggregate != "CONSTANT" || hasScope, $"{name}: CONSTANT needs a ScopeDownStatement");
            if (hasScope)
            {
                CheckStatement(problems, scope, name);
            }
        }

        return problems;
    }

    private static void CheckStatement(List<string> problems, JsonElement statement, string rule)
    {
        var kind = statement.EnumerateObject().Single();
        Expect(problems, AwsStatements.Contains(kind.Name), $"{rule}: statement {kind.Name} cannot scope down a rate-based rule here");
        var body = kind.Value;
        switch (kind.Name)
        {
            case "AndStatement" or "OrStatement":
                var statements = body.GetProperty("Statements");
                Expect(problems, statements.GetArrayLength() >= 2, $"{rule}: {kind.Name} needs at least two statements");
                foreach (var inner in statements.EnumerateArray())
                {
                    CheckStatement(problems, inner, rule);
                }

                break;
            case "NotStatement":
                CheckStatement(problems, body.GetProperty("Statement"), rule);
                break;
            case "ByteMatchStatement":
                var search = body.GetProperty("SearchString").GetString()!;
                Expect(problems, System.Text.Encoding.UTF8.GetByteCount(search) is >= 1 and <= 200, $"{rule}: SearchString must be 1 to 200 bytes");
                Expect(problems, AwsPositions.Contains(body.GetProperty("PositionalConstraint").GetString()), $"{rule}: PositionalConstraint");
                CheckField(problems, body.GetProperty("FieldToMatch"), rule);
                CheckTransformations(problems, body.GetProperty("TextTransformations"), rule);
                break;
            case "RegexMatchStatement":
                var regex = body.GetProperty("RegexString").GetString()!;
                Expect(problems, regex.Length is >= 1 and <= 512, $"{rule}: RegexString must be 1 to 512 characters");
                _ = new Regex(regex);
                CheckField(problems, body.GetProperty("FieldToMatch"), rule);
                CheckTransformations(problems, body.GetProperty("TextTransformations"), rule);
                break;
            case "SizeConstraintStatement":
                Expect(problems, body.GetProperty("ComparisonOperator").GetString() is "EQ" or "NE" or "LE" or "LT" or "GE" or "GT", $"{rule}: ComparisonOperator");
                Expect(problems, body.GetProperty("Size").GetInt64() is >= 0 and <= 21474836480, $"{rule}: Size");
                CheckField(problems, body.GetProperty("FieldToMatch"), rule);
                CheckTransformations(problems, body.GetProperty("TextTransformations"), rule);
                break;
        }
    }

    private static void CheckField(List<string> problems, JsonElement field, string rule)
    {
        var kind = field.EnumerateObject().Single();
        Expect(problems, kind.Name is "UriPath" or "Method" or "SingleHeader" or "QueryString", $"{rule}: FieldToMatch {kind.Name}");
        if (kind.Name == "SingleHeader")
        {
            var header = kind.Value.GetProperty("Name").GetString()!;
            Expect(problems, header.Length is > 0 and <= 64 && header == header.ToLowerInvariant(), $"{rule}: SingleHeader Name must be lower case, 1 to 64 characters");
        }
    }

    private static void CheckTransformations(List<string> problems, JsonElement transformations, string rule)
    {
        var priorities = new HashSet<long>();
        Expect(problems, transformations.GetArrayLength() is >= 1 and <= 10, $"{rule}: 1 to 10 text transformations");
        foreach (var t in transformations.EnumerateArray())
        {
            Expect(problems, priorities.Add(t.GetProperty("Priority").GetInt64()), $"{rule}: transformation priorities must be unique");
            Expect(problems, AwsTransformations.Contains(t.GetProperty("Type").GetString()), $"{rule}: transformation type");
        }
    }

    private static void CheckVisibility(List<string> problems, JsonElement visibility, string rule)
    {
        Expect(problems, visibility.GetProperty("SampledRequestsEnabled").ValueKind is JsonValueKind.True or JsonValueKind.False, $"{rule}: SampledRequestsEnabled");
        Expect(problems, visibility.GetProperty("CloudWatchMetricsEnabled").ValueKind is JsonValueKind.True or JsonValueKind.False, $"{rule}: CloudWatchMetricsEnabled");
        Expect(problems, AwsMetricName().IsMatch(visibility.GetProperty("MetricName").GetString()!), $"{rule}: MetricName");
    }

    /// <summary>
    /// The rules language as used here: balanced parentheses and braces outside strings, closed strings, and only the
    /// fields and functions rate limiting rules may use.
    /// </summary>
    private static IEnumerable<string> CheckCloudflareExpression(string expression)
    {
        var depth = 0;
        var inString = false;
        for (var i = 0; i < expression.Length; i++)
        {
            var c = expression[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                continue;
            }

            switch (c)
            {
                case '"': inString = true; break;
                case '(' or '{' or '[': depth++; break;
                case ')' or '}' or ']': depth--; break;
            }

            if (depth < 0)
            {
                yield return "unbalanced brackets";
                yield break;
            }
        }

        if (inString || depth != 0)
        {
            yield return "unbalanced brackets or an open string";
        }

        var outside = CloudflareString().Replace(expression, "\"\"");
        foreach (Match identifier in CloudflareIdentifier().Matches(outside))
        {
            if (identifier.Value is not ("http.request.uri.path" or "http.request.method" or "http.host" or "http.request.headers" or "http.request.headers.names"
                or "lower" or "starts_with" or "ends_with" or "any" or "len" or "eq" or "ne" or "in" or "and" or "or" or "not" or "matches" or "true"))
            {
                yield return $"'{identifier.Value}' is not a field or function rate limiting rules offer";
            }
        }
    }

    private static void Expect(List<string> problems, bool condition, string problem)
    {
        if (!condition)
        {
            problems.Add(problem);
        }
    }

    [GeneratedRegex("^http\\.request\\.headers\\[\"[a-z0-9-]+\"\\]$")]
    private static partial Regex CloudflareHeaderCharacteristic();

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex CloudflareString();

    [GeneratedRegex("[a-z_][a-z_.]*")]
    private static partial Regex CloudflareIdentifier();

    [GeneratedRegex("^[\\w\\-]{1,128}$")]
    private static partial Regex AwsName();

    [GeneratedRegex("^[\\w#:\\.\\-/]{1,255}$")]
    private static partial Regex AwsMetricName();
}
