using System.Text.Json;
using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests.Export;

/// <summary>
/// <c>floodgate export</c>: every edge rule shape of docs/gateway.md to both targets, exact and approximated, each output
/// checked against the providers' documented constraints (<see cref="ProviderConstraints"/>), every approximation warned
/// of by rule and target, and what cannot be exported refused by name.
/// </summary>
public sealed class ExportTests : IDisposable
{
    private const string Shapes = """
        upstream: http://127.0.0.1:1
        trusted_proxies: [10.0.0.0/8]
        edge:
          - name: per-ip
            key: [client_ip]
            limit: 300/min
            ban: 10m
          - name: login
            match: { path: /login, method: POST }
            key: [client_ip]
            limit: 50/min
            algorithm: sliding_window
          - name: api-prefix
            match: { path: "/api/**", host: "*.example.com" }
            key: [client_ip, "header:x-api-key"]
            limit: 1000/10s
          - name: search-glob
            match: { path: "/v1/*/search", headers: { x-client: mobile } }
            limit: 20000/h
            mode: shadow
          - name: orders-route
            match: { route: "/orders/{id}" }
            key: [client_ip, route]
            limit: 100/90s
            burst: 200
          - name: slow-ban
            key: [client_ip]
            limit: 120/min
            ban: 2d
          - name: per-route
            match: { path: "/reports/**" }
            key: [route]
            limit: 600/min
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-export-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Cloudflare_gets_a_valid_http_ratelimit_ruleset_with_each_approximation_named()
    {
        var (code, document, errors) = Run(Shapes, "--target", "cloudflare");
        Assert.True(code == 0, errors);
        Assert.Empty(ProviderConstraints.CheckCloudflare(document));

        using var json = JsonDocument.Parse(document);
        var rules = json.RootElement.GetProperty("resource").GetProperty("cloudflare_ruleset").GetProperty("floodgate_edge").GetProperty("rules");
        var byName = rules.EnumerateArray().ToDictionary(r => r.GetProperty("description").GetString()!);
        Assert.Equal(7, byName.Count);

        // Exact: 300/min per IP with a 10-minute ban.
        var perIp = byName["per-ip"];
        Assert.Equal("true", perIp.GetProperty("expression").GetString());
        Assert.Equal("block", perIp.GetProperty("action").GetString());
        Assert.Equal(["cf.colo.id", "ip.src"], perIp.GetProperty("ratelimit").GetProperty("characteristics").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(60, perIp.GetProperty("ratelimit").GetProperty("period").GetInt64());
        Assert.Equal(300, perIp.GetProperty("ratelimit").GetProperty("requests_per_period").GetInt64());
        Assert.Equal(600, perIp.GetProperty("ratelimit").GetProperty("mitigation_timeout").GetInt64());

        Assert.Equal("(lower(http.request.uri.path) eq \"/login\" or lower(http.request.uri.path) eq \"/login/\") and http.request.method in {\"POST\"}", byName["login"].GetProperty("expression").GetString());
        Assert.Equal("(lower(http.request.uri.path) eq \"/api\" or starts_with(lower(http.request.uri.path), \"/api/\")) and ends_with(lower(http.host), \".example.com\")", byName["api-prefix"].GetProperty("expression").GetString());
        Assert.Equal(["cf.colo.id", "ip.src", "http.request.headers[\"x-api-key\"]"], byName["api-prefix"].GetProperty("ratelimit").GetProperty("characteristics").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(10, byName["api-prefix"].GetProperty("ratelimit").GetProperty("period").GetInt64());
        Assert.Equal("lower(http.request.uri.path) matches \"^/v1/[^/]*/search/?$\" and any(lower(http.request.headers[\"x-client\"][*])[*] eq \"mobile\")", byName["search-glob"].GetProperty("expression").GetString());
        Assert.Equal("log", byName["search-glob"].GetProperty("action").GetString());
        Assert.Equal(3600, byName["search-glob"].GetProperty("ratelimit").GetProperty("period").GetInt64());

        // 100 per 90 s: 60 s offered below it, the count scaled down (66), never looser.
        Assert.Equal(60, byName["orders-route"].GetProperty("ratelimit").GetProperty("period").GetInt64());
        Assert.Equal(66, byName["orders-route"].GetProperty("ratelimit").GetProperty("requests_per_period").GetInt64());
        Assert.Equal(86400, byName["slow-ban"].GetProperty("ratelimit").GetProperty("mitigation_timeout").GetInt64());

        Assert.Contains("warning: rule 'orders-route' (cloudflare): a period of 90 s is not offered", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'orders-route' (cloudflare): burst 200 is not a WAF notion", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'orders-route' (cloudflare): the route template '/orders/{id}' is exported as a path regular expression", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'orders-route' (cloudflare): the key part 'route' has no counterpart: dropped", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'slow-ban' (cloudflare): a ban of 172800 s is not offered: exported as a mitigation timeout of 86400 s (LOOSER)", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'per-route' (cloudflare): is keyed on nothing", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'per-ip' (cloudflare): IPv6 clients are counted per address", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'login' (cloudflare): has no ban", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("rule 'per-ip' (cloudflare): a ban", errors, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("json")]
    [InlineData("cloudformation")]
    public void Aws_waf_gets_a_valid_web_acl_with_each_approximation_named(string format)
    {
        var (code, document, errors) = Run(Shapes, "--target", "aws-waf", "--format", format);
        Assert.True(code == 0, errors);
        Assert.Empty(ProviderConstraints.CheckAwsWaf(document));

        using var json = JsonDocument.Parse(document);
        var acl = format == "json" ? json.RootElement : json.RootElement.GetProperty("Resources").GetProperty("FloodgateEdgeWebAcl").GetProperty("Properties");
        var byName = acl.GetProperty("Rules").EnumerateArray().ToDictionary(r => r.GetProperty("Name").GetString()!, r => r.GetProperty("Statement").GetProperty("RateBasedStatement"));
        Assert.Equal(300, byName["per-ip"].GetProperty("Limit").GetInt64());
        Assert.Equal(60, byName["per-ip"].GetProperty("EvaluationWindowSec").GetInt64());
        Assert.Equal("IP", byName["per-ip"].GetProperty("AggregateKeyType").GetString());
        Assert.False(byName["per-ip"].TryGetProperty("ScopeDownStatement", out _));

        Assert.Equal("CUSTOM_KEYS", byName["api-prefix"].GetProperty("AggregateKeyType").GetString());
        Assert.Equal(["IP", "Header"], byName["api-prefix"].GetProperty("CustomKeys").EnumerateArray().Select(k => k.EnumerateObject().Single().Name));

        // 1000 per 10 s: AWS counts over 60 s at least, so 6000 per 60 s, with a burst warning.
        Assert.Equal(60, byName["api-prefix"].GetProperty("EvaluationWindowSec").GetInt64());
        Assert.Equal(6000, byName["api-prefix"].GetProperty("Limit").GetInt64());

        // No key left (route has no counterpart): one count over everything the rule matches.
        Assert.Equal("CONSTANT", byName["per-route"].GetProperty("AggregateKeyType").GetString());
        Assert.Equal("IP", byName["search-glob"].GetProperty("AggregateKeyType").GetString());
        Assert.Equal(600, byName["search-glob"].GetProperty("EvaluationWindowSec").GetInt64());
        Assert.Equal(3333, byName["search-glob"].GetProperty("Limit").GetInt64());
        var login = byName["login"].GetProperty("ScopeDownStatement").GetProperty("AndStatement").GetProperty("Statements");
        Assert.Equal(2, login.GetArrayLength());

        Assert.Contains("warning: rule 'per-ip' (aws-waf): AWS WAF blocks only while the rate is over the limit: the ban of 600 s is not exported", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'api-prefix' (aws-waf): a period of 10 s is not offered (only 60, 120, 300, 600 s): exported as 6000 per 60 s for 1000 per 10 s, so a burst", errors, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'search-glob' (aws-waf): a period of 3600 s is not offered", errors, StringComparison.Ordinal);
    }

    [Fact]
    public void A_limit_below_the_targets_minimum_is_refused_by_name_unless_looser_is_allowed()
    {
        const string Login = """
            upstream: http://127.0.0.1:1
            edge:
              - name: login-strict
                match: { path: /login }
                limit: 5/min
            """;
        var (code, document, errors) = Run(Login, "--target", "aws-waf");
        Assert.Equal(1, code);
        Assert.Empty(document);
        Assert.Contains("error: rule 'login-strict' (aws-waf): 5 per 60 s is below the least the target can limit to (10 per 60 s); it cannot be exported without making it looser", errors, StringComparison.Ordinal);

        (code, document, errors) = Run(Login, "--target", "aws-waf", "--allow-looser");
        Assert.Equal(0, code);
        Assert.Empty(ProviderConstraints.CheckAwsWaf(document));
        Assert.Contains("exported at 10 per 60 s, LOOSER than the rule", errors, StringComparison.Ordinal);

        // Cloudflare takes 5 per minute as it is.
        (code, document, errors) = Run(Login, "--target", "cloudflare");
        Assert.Equal(0, code);
        Assert.Empty(ProviderConstraints.CheckCloudflare(document));
        Assert.DoesNotContain("login-strict' (cloudflare): a period", errors, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("concurrency: 10", "is a concurrency limit (requests in flight)")]
    [InlineData("limit: 10000/day\n    algorithm: quota", "is a calendar quota")]
    [InlineData("limit: 100/min\n    cost: 5", "weighs requests (cost)")]
    public void A_rule_no_waf_can_count_is_refused_by_name_for_both_targets(string limit, string why)
    {
        var policy = $"""
            upstream: http://127.0.0.1:1
            edge:
              - name: per-ip
                limit: 100/min
              - name: odd
                {limit}
            """;
        foreach (var target in new[] { "cloudflare", "aws-waf" })
        {
            var (code, document, errors) = Run(policy, "--target", target);
            Assert.Equal(1, code);
            Assert.Empty(document);
            Assert.Contains($"error: rule 'odd' ({target}): {why}", errors, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Rules_on_the_rate_limit_id_export_as_its_headers_presence_with_a_warning()
    {
        File.WriteAllText(Path.Combine(_directory, "k1"), new string('k', 40) + "\n");
        var policy = $$"""
            upstream: http://127.0.0.1:1
            ratelimit_id:
              keys: [{ id: k1, file: {{Path.Combine(_directory, "k1")}} }]
            edge:
              - name: per-user
                match: { ratelimit_id: verified }
                key: [header:x-ratelimit-user-id]
                limit: 600/min
              - name: no-id
                match: { ratelimit_id: absent }
                key: [client_ip]
                limit: 60/min
            """;
        var (code, document, errors) = Run(policy, "--target", "cloudflare");
        Assert.Equal(0, code);
        Assert.Empty(ProviderConstraints.CheckCloudflare(document));
        Assert.Contains("any(http.request.headers.names[*] eq \\\"x-ratelimit-user-id\\\")", document, StringComparison.Ordinal);
        Assert.Contains("not any(http.request.headers.names[*]", document, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'per-user' (cloudflare): match ratelimit_id: verified is exported as the x-ratelimit-user-id header's presence", errors, StringComparison.Ordinal);

        (code, document, errors) = Run(policy, "--target", "aws-waf", "--format", "cloudformation");
        Assert.Equal(0, code);
        Assert.Empty(ProviderConstraints.CheckAwsWaf(document));
        Assert.Contains("\"NotStatement\"", document, StringComparison.Ordinal);
        Assert.Contains("warning: rule 'no-id' (aws-waf): match ratelimit_id: absent", errors, StringComparison.Ordinal);
    }

    [Fact]
    public void The_validator_catches_what_a_provider_would_refuse()
    {
        // The checks above are only worth something if the constraints fail on bad documents.
        var (_, document, _) = Run(Shapes, "--target", "aws-waf");
        Assert.Contains(ProviderConstraints.CheckAwsWaf(document.Replace("\"EvaluationWindowSec\": 60", "\"EvaluationWindowSec\": 30", StringComparison.Ordinal)), p => p.Contains("EvaluationWindowSec", StringComparison.Ordinal));
        Assert.Contains(ProviderConstraints.CheckAwsWaf(document.Replace("\"Limit\": 300", "\"Limit\": 5", StringComparison.Ordinal)), p => p.Contains("Limit", StringComparison.Ordinal));
        (_, document, _) = Run(Shapes, "--target", "cloudflare");
        Assert.Contains(ProviderConstraints.CheckCloudflare(document.Replace("\"period\": 60", "\"period\": 90", StringComparison.Ordinal)), p => p.Contains("period", StringComparison.Ordinal));
        Assert.Contains(ProviderConstraints.CheckCloudflare(document.Replace("\"cf.colo.id\",", string.Empty, StringComparison.Ordinal)), p => p.Contains("cf.colo.id", StringComparison.Ordinal));
    }

    private (int Code, string Document, string Errors) Run(string policy, params string[] options)
    {
        var path = Path.Combine(_directory, $"policy-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, policy);
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = GatewayCli.Build(output, errors).Parse(["export", .. options, path]).Invoke();
        return (code, output.ToString(), errors.ToString());
    }
}
