using System.Net;
using System.Text.Json;

namespace Floodgate.Gateway.Tests.Dashboard;

public sealed class DashboardEndpointTests
{
    private const string Policy = """
        upstream: {upstream}
        trusted_proxies: [127.0.0.0/8]
        {identity}
        user:
          - name: per-user
            limit: 2/min
          - name: shadowed
            limit: 1/min
            mode: shadow
        """;

    [Fact]
    public async Task The_json_needs_an_admin_token_while_the_page_is_open_and_holds_no_data()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($"{Policy}\n{token.Section}");

        using var refused = await gateway.Admin.GetAsync("/admin/v1/dashboard");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

        using var page = await gateway.Admin.GetAsync("/admin/dashboard");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("fetch(API, {", html, StringComparison.Ordinal);
        Assert.Contains("+ \"v1/dashboard\";", html, StringComparison.Ordinal);
        Assert.Contains("sessionStorage", html, StringComparison.Ordinal);
        // Nothing fetched from elsewhere: no absolute address in the page but the SVG namespace.
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.Equal("no-store", page.Headers.CacheControl?.ToString());
    }

    [Fact]
    public async Task The_json_shows_rejections_per_second_the_top_offenders_and_shadow_would_be_rejections()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($"{Policy}\n{token.Section}");
        using var admin = token.Client(gateway.Host.AdminAddress!);
        var now = gateway.Time.GetUtcNow();
        var alice = gateway.Identity.CreateToken(subject: "alice", now: now);
        var bob = gateway.Identity.CreateToken(subject: "bob", now: now);

        var aliceStatuses = await gateway.StatusesAsync(6, "/a", alice, forwardedFor: "198.51.100.7");
        var bobStatuses = await gateway.StatusesAsync(3, "/b", bob, forwardedFor: "203.0.113.9");
        Statuses.Expect([200, 200, 429, 429, 429, 429], aliceStatuses);
        Statuses.Expect([200, 200, 429], bobStatuses);

        using var response = await admin.GetAsync("/admin/v1/dashboard");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        var rules = body.GetProperty("rules").EnumerateArray().ToDictionary(r => r.GetProperty("rule").GetString()!);
        var perUser = rules["per-user"].GetProperty("rejected");
        Assert.Equal(5, perUser.GetProperty("total").GetInt64());
        var subjects = perUser.GetProperty("subjects").EnumerateArray().Select(h => (h.GetProperty("key").GetString(), h.GetProperty("count").GetInt64())).ToList();
        Assert.Equal([("alice", 4L), ("bob", 1L)], subjects);
        var networks = perUser.GetProperty("networks").EnumerateArray().Select(h => (h.GetProperty("key").GetString(), h.GetProperty("count").GetInt64())).ToList();
        Assert.Equal([("198.51.100.0/24", 4L), ("203.0.113.0/24", 1L)], networks);
        Assert.Equal(0, rules["per-user"].GetProperty("shadow").GetProperty("total").GetInt64());

        var shadow = rules["shadowed"].GetProperty("shadow");
        Assert.True(shadow.GetProperty("total").GetInt64() >= 1);
        Assert.Contains(shadow.GetProperty("subjects").EnumerateArray(), h => h.GetProperty("key").GetString() == "alice");
        Assert.Equal(0, rules["shadowed"].GetProperty("rejected").GetProperty("total").GetInt64());

        // Other gateways in this test process count on the same meter, so the rates are at least this gateway's.
        var series = body.GetProperty("rates").GetProperty("series").EnumerateArray()
            .ToDictionary(s => $"{s.GetProperty("tier").GetString()}/{s.GetProperty("outcome").GetString()}", s => s.GetProperty("total").GetInt64());
        Assert.True(series.GetValueOrDefault("user/rejected") >= 5);
        Assert.True(series.GetValueOrDefault("user/shadow_rejected") >= 1);

        var store = body.GetProperty("store");
        Assert.Equal("memory", store.GetProperty("kind").GetString());
        Assert.True(store.GetProperty("connected").GetBoolean());
        Assert.Equal(JsonValueKind.Null, store.GetProperty("breakerOpen").ValueKind);
        var policy = body.GetProperty("policy");
        Assert.False(string.IsNullOrEmpty(policy.GetProperty("version").GetString()));
        Assert.Equal(JsonValueKind.Null, policy.GetProperty("lastReloadError").ValueKind);
    }
}
