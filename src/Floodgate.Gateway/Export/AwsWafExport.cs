using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Floodgate.Gateway.Export;

/// <summary>
/// The edge rules as AWS WAF rate-based rules: a WebACL (<c>aws wafv2 create-web-acl --cli-input-json</c>) or a
/// CloudFormation template with an <c>AWS::WAFv2::WebACL</c>, each rule's <c>Limit</c> and <c>EvaluationWindowSec</c>
/// from its rate, <c>AggregateKeyType</c> IP, custom keys (the client IP, headers) or constant, and a scope-down statement
/// from its match.
/// </summary>
internal static class AwsWafExport
{
    private const string Target = "aws-waf";

    /// <summary>The evaluation windows AWS WAF offers, in seconds.</summary>
    public static readonly long[] Windows = [60, 120, 300, 600];

    /// <summary>The least and the most a rate-based rule's <c>Limit</c> may be.</summary>
    public const long MinLimit = 10;

    /// <summary>The most a rate-based rule's <c>Limit</c> may be.</summary>
    public const long MaxLimit = 2_000_000_000;

    public static string Write(IReadOnlyList<EdgeRuleShape> shapes, List<string> warnings, List<string> errors, bool allowLooser, bool cloudFormation)
    {
        var rules = new JsonArray();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var shape in shapes)
        {
            if (EdgeExport.Window(shape, Target, Windows, MinLimit, MaxLimit, allowLooser, warnings, errors) is not var (window, limit))
            {
                continue;
            }

            var name = Name(shape.Name);
            if (name != shape.Name)
            {
                warnings.Add(EdgeExport.About(shape, Target, $"named '{name}': a WAF rule name is letters, digits, '_' and '-'."));
            }

            if (!names.Add(name))
            {
                errors.Add(EdgeExport.About(shape, Target, $"its WAF name '{name}' is another rule's too; rename one."));
                continue;
            }

            if (shape.Ban is { } ban)
            {
                warnings.Add(EdgeExport.About(shape, Target, string.Create(CultureInfo.InvariantCulture, $"AWS WAF blocks only while the rate is over the limit: the ban of {Math.Ceiling(ban.TotalSeconds)} s is not exported (LOOSER after the rate falls).")));
            }

            var statement = new JsonObject
            {
                ["Limit"] = limit,
                ["EvaluationWindowSec"] = window,
            };
            var scope = ScopeDown(shape);
            if (shape.KeyHeaders.Count == 0 && shape.KeysClientIp)
            {
                statement["AggregateKeyType"] = "IP";
            }
            else if (shape.KeyHeaders.Count > 0)
            {
                var keys = new JsonArray();
                if (shape.KeysClientIp)
                {
                    keys.Add(new JsonObject { ["IP"] = new JsonObject() });
                }

                foreach (var header in shape.KeyHeaders)
                {
                    keys.Add(new JsonObject { ["Header"] = new JsonObject { ["Name"] = header, ["TextTransformations"] = None() } });
                }

                statement["AggregateKeyType"] = "CUSTOM_KEYS";
                statement["CustomKeys"] = keys;
            }
            else
            {
                // One count for every request the rule matches; AWS requires a scope-down statement for it.
                statement["AggregateKeyType"] = "CONSTANT";
                scope ??= new JsonObject
                {
                    ["SizeConstraintStatement"] = new JsonObject
                    {
                        ["FieldToMatch"] = new JsonObject { ["UriPath"] = new JsonObject() },
                        ["ComparisonOperator"] = "GE",
                        ["Size"] = 0,
                        ["TextTransformations"] = None(),
                    },
                };
            }

            if (scope is not null)
            {
                statement["ScopeDownStatement"] = scope;
            }

            rules.Add(new JsonObject
            {
                ["Name"] = name,
                ["Priority"] = rules.Count,
                ["Action"] = shape.Shadow ? new JsonObject { ["Count"] = new JsonObject() } : new JsonObject { ["Block"] = new JsonObject() },
                ["Statement"] = new JsonObject { ["RateBasedStatement"] = statement },
                ["VisibilityConfig"] = Visibility(name),
            });
        }

        var webAcl = new JsonObject
        {
            ["Name"] = "floodgate-edge",
            ["Scope"] = "REGIONAL",
            ["Description"] = "Exported by floodgate export from the edge tier of a Floodgate policy.",
            ["DefaultAction"] = new JsonObject { ["Allow"] = new JsonObject() },
            ["VisibilityConfig"] = Visibility("floodgate-edge"),
            ["Rules"] = rules,
        };
        JsonNode document = cloudFormation
            ? new JsonObject
            {
                ["AWSTemplateFormatVersion"] = "2010-09-09",
                ["Description"] = "Floodgate edge rules as an AWS WAF WebACL (floodgate export).",
                ["Resources"] = new JsonObject
                {
                    ["FloodgateEdgeWebAcl"] = new JsonObject { ["Type"] = "AWS::WAFv2::WebACL", ["Properties"] = webAcl },
                },
            }
            : webAcl;
        return document.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
    }

    private static JsonObject? ScopeDown(EdgeRuleShape shape)
    {
        var match = shape.Match;
        var all = new List<JsonObject>();
        if (shape.Paths.Count > 0)
        {
            all.Add(AnyOf(shape.Paths.SelectMany(Path)));
        }

        if (match.Methods.Count > 0)
        {
            all.Add(AnyOf(match.Methods.Select(m => ByteMatch(m.ToUpperInvariant(), new JsonObject { ["Method"] = new JsonObject() }, "EXACTLY", "NONE"))));
        }

        if (match.Hosts.Count > 0)
        {
            all.Add(AnyOf(match.Hosts.Select(h => h.StartsWith("*.", StringComparison.Ordinal)
                ? ByteMatch(h[1..].ToLowerInvariant(), Header("host"), "ENDS_WITH", "LOWERCASE")
                : ByteMatch(h.ToLowerInvariant(), Header("host"), "EXACTLY", "LOWERCASE"))));
        }

        foreach (var (name, value) in match.Headers)
        {
            all.Add(value == "*" ? Present(name.ToLowerInvariant()) : ByteMatch(value.ToLowerInvariant(), Header(name.ToLowerInvariant()), "EXACTLY", "LOWERCASE"));
        }

        if (match.Condition is not null)
        {
            var present = Present(shape.RateLimitIdHeader);
            all.Add(match.Condition == AspNetCore.RateLimitIds.RateLimitIdConditions.Verified ? present : new JsonObject { ["NotStatement"] = new JsonObject { ["Statement"] = present } });
        }

        return all.Count switch
        {
            0 => null,
            1 => all[0],
            _ => new JsonObject { ["AndStatement"] = new JsonObject { ["Statements"] = new JsonArray([.. all]) } },
        };
    }

    private static IEnumerable<JsonObject> Path(PathCondition path)
    {
        var uri = () => new JsonObject { ["UriPath"] = new JsonObject() };
        switch (path.Kind)
        {
            case PathKind.Exact:
                yield return ByteMatch(path.Value, uri(), "EXACTLY", "LOWERCASE");
                if (path.Value != "/")
                {
                    yield return ByteMatch(path.Value + "/", uri(), "EXACTLY", "LOWERCASE");
                }

                break;
            case PathKind.Prefix:
                yield return ByteMatch(path.Value.Length == 0 ? "/" : path.Value, uri(), "EXACTLY", "LOWERCASE");
                yield return ByteMatch(path.Value + "/", uri(), "STARTS_WITH", "LOWERCASE");
                break;
            default:
                yield return new JsonObject
                {
                    ["RegexMatchStatement"] = new JsonObject { ["RegexString"] = path.Value, ["FieldToMatch"] = uri(), ["TextTransformations"] = Transform("LOWERCASE") },
                };
                break;
        }
    }

    private static JsonObject AnyOf(IEnumerable<JsonObject> statements)
    {
        var list = statements.ToList();
        return list.Count == 1 ? list[0] : new JsonObject { ["OrStatement"] = new JsonObject { ["Statements"] = new JsonArray([.. list]) } };
    }

    private static JsonObject ByteMatch(string search, JsonObject field, string position, string transformation) => new()
    {
        ["ByteMatchStatement"] = new JsonObject
        {
            ["SearchString"] = search,
            ["FieldToMatch"] = field,
            ["TextTransformations"] = Transform(transformation),
            ["PositionalConstraint"] = position,
        },
    };

    private static JsonObject Present(string header) => new()
    {
        ["SizeConstraintStatement"] = new JsonObject
        {
            ["FieldToMatch"] = Header(header),
            ["ComparisonOperator"] = "GT",
            ["Size"] = 0,
            ["TextTransformations"] = None(),
        },
    };

    private static JsonObject Header(string name) => new() { ["SingleHeader"] = new JsonObject { ["Name"] = name } };

    private static JsonArray None() => Transform("NONE");

    private static JsonArray Transform(string type) => [new JsonObject { ["Priority"] = 0, ["Type"] = type }];

    private static JsonObject Visibility(string name) => new()
    {
        ["SampledRequestsEnabled"] = true,
        ["CloudWatchMetricsEnabled"] = true,
        ["MetricName"] = name,
    };

    private static string Name(string name)
    {
        var cleaned = new string([.. name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '-')]);
        return cleaned.Length > 128 ? cleaned[..128] : cleaned;
    }
}
