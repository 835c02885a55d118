using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

public sealed class AdminAuthTests
{
    [Fact]
    public async Task Admin_routes_refuse_a_missing_wrong_short_long_or_non_bearer_token_with_401_and_log_each()
    {
        using var token = new AdminTokens();
        using var logs = new FakeLoggerProvider();
        await using var gateway = await TestGateway.StartAsync($"upstream: {{upstream}}\n{token.Section}", logs: logs);

        var same = new string('x', token.Secret.Length);
        var presented = new (string? Scheme, string? Value)[]
        {
            (null, null),
            ("Bearer", same),
            ("Bearer", token.Secret[..^1]),
            ("Bearer", token.Secret + "0"),
            ("Basic", token.Secret),
        };
        foreach (var (scheme, value) in presented)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/status");
            if (scheme is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue(scheme, value);
            }

            using var response = await gateway.Admin.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("Bearer", response.Header("WWW-Authenticate"), StringComparison.Ordinal);
        }

        var refused = logs.Collector.GetSnapshot().Where(r => r.Message.StartsWith("Admin request refused", StringComparison.Ordinal)).Select(r => r.Message).ToList();
        Assert.Equal(5, refused.Count);
        Assert.Contains("(no bearer token): GET /admin/v1/status from 127.0.0.1", refused[0], StringComparison.Ordinal);
        Assert.Equal(3, refused.Count(m => m.Contains("(unknown token)", StringComparison.Ordinal)));
        Assert.Contains("(not a bearer token)", refused[4], StringComparison.Ordinal);
        Assert.All(refused, m => Assert.DoesNotContain(token.Secret, m, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_valid_token_is_admitted_and_named_while_metrics_health_and_readiness_stay_open()
    {
        using var token = new AdminTokens("deploy-bot");
        await using var gateway = await TestGateway.StartAsync($"upstream: {{upstream}}\n{token.Section}");
        using var admin = token.Client(gateway.Host.AdminAddress!);

        using var status = await admin.GetAsync("/admin/v1/status");
        Assert.Equal(HttpStatusCode.OK, status.StatusCode);
        var body = JsonDocument.Parse(await status.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("deploy-bot", body.GetProperty("token").GetString());
        Assert.Equal("memory", body.GetProperty("store").GetString());

        foreach (var open in new[] { "/healthz", "/readyz", "/metrics" })
        {
            using var response = await gateway.Admin.GetAsync(open);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task The_proxy_port_never_serves_admin_routes_even_with_a_valid_token()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($"upstream: {{upstream}}\n{token.Section}");
        using var proxy = token.Client(gateway.Host.ProxyAddress);

        using var response = await proxy.GetAsync("/admin/v1/status");

        // The echo upstream answered: the path went through the proxy like any other.
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("/admin/v1/status", body.GetProperty("path").GetString());
        Assert.False(body.TryGetProperty("token", out _));
        Assert.Equal(1, gateway.Upstream.Hits);
    }

    [Fact]
    public async Task Without_admin_tokens_every_admin_route_is_refused()
    {
        await using var gateway = await TestGateway.StartAsync("upstream: {upstream}");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/status");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "anything-at-all-long-enough");
        using var response = await gateway.Admin.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public void Admin_tokens_that_are_missing_short_unset_or_ambiguous_are_refused_at_load_naming_the_field()
    {
        using var token = new AdminTokens();
        var shortFile = Path.Combine(Path.GetDirectoryName(token.File)!, "short");
        File.WriteAllText(shortFile, "abc");
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($$"""
            upstream: http://127.0.0.1:5000
            admin:
              tokens:
                - { name: a, file: {{shortFile}} }
                - { name: b, file: /no/such/floodgate/token }
                - { name: c, env: FLOODGATE_TEST_NO_SUCH_VARIABLE }
                - { name: d, file: {{token.File}}, env: X }
                - { file: {{token.File}} }
                - { name: e, file: {{token.File}} }
                - { name: e, file: {{token.File}} }
            """, "admin.yaml"));
        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Equal(6, messages.Count);
        Assert.StartsWith("admin.yaml:4:", messages[0], StringComparison.Ordinal);
        Assert.Contains("admin.tokens[0].file: the token must be at least 16 characters", messages[0], StringComparison.Ordinal);
        Assert.Contains("admin.tokens[1].file: cannot be read", messages[1], StringComparison.Ordinal);
        Assert.Contains("admin.tokens[2].env: the environment variable FLOODGATE_TEST_NO_SUCH_VARIABLE is not set", messages[2], StringComparison.Ordinal);
        Assert.Contains("admin.tokens[3]: needs exactly one of file", messages[3], StringComparison.Ordinal);
        Assert.Contains("admin.tokens[4].name: is required", messages[4], StringComparison.Ordinal);
        Assert.Contains("admin.tokens[6].name: 'e' names two tokens", messages[5], StringComparison.Ordinal);
    }

    [Fact]
    public void A_token_matches_by_hash_whatever_the_length_presented()
    {
        var set = new Admin.Auth.AdminTokenSet([Admin.Auth.AdminToken.Create("ops", "0123456789abcdef"), Admin.Auth.AdminToken.Create("ci", "fedcba9876543210")]);
        Assert.Equal("ops", set.Match("0123456789abcdef"));
        Assert.Equal("ci", set.Match("fedcba9876543210"));
        Assert.Null(set.Match("0123456789abcde"));
        Assert.Null(set.Match(string.Empty));
        Assert.Null(set.Match(new string('a', 10_000)));
    }
}
