using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Floodgate.Gateway.Tests.Dashboard;

/// <summary>
/// The dashboard page in a real headless Chromium against a running gateway: the token is entered in the page, and the
/// page shows the figures the JSON endpoint gives. Set <c>FLOODGATE_DASHBOARD_SCREENSHOT</c> to a file to keep the
/// screenshot (docs/images/dashboard.png was made so).
/// </summary>
public sealed class DashboardPageTests
{
    [Fact]
    public async Task The_page_asks_for_the_token_then_shows_the_figures_the_json_gives()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8]
            {identity}
            user:
              - name: per-user
                limit: 2/min
              - name: shadowed
                limit: 1/min
                mode: shadow
            {{token.Section}}
            """);
        var now = gateway.Time.GetUtcNow();
        Statuses.Expect([200, 200, 429, 429, 429], await gateway.StatusesAsync(5, "/a", gateway.Identity.CreateToken(subject: "alice", now: now), forwardedFor: "198.51.100.7"));
        Statuses.Expect([200, 200, 429], await gateway.StatusesAsync(3, "/b", gateway.Identity.CreateToken(subject: "bob", now: now), forwardedFor: "2001:db8:1:2::5"));

        await using var browser = await HeadlessChromium.StartAsync();
        await browser.NavigateAsync(new Uri(gateway.Host.AdminAddress!, "/admin/dashboard"));
        await browser.WaitForAsync("document.readyState === 'complete' && document.getElementById('token') !== null", TimeSpan.FromSeconds(20));

        // Without a token the page shows nothing; with a wrong one it says it was refused.
        Assert.Equal("Enter an admin token to see the figures.", (string?)await browser.EvaluateAsync("document.getElementById('status').textContent"));
        await browser.EvaluateAsync("document.getElementById('token').value = 'fg-admin-wrong'; document.getElementById('login').requestSubmit(); true");
        await browser.WaitForAsync("document.getElementById('status').textContent.includes('refused (401)')", TimeSpan.FromSeconds(10));

        await browser.EvaluateAsync($"document.getElementById('token').value = {JsonSerializer.Serialize(token.Secret)}; document.getElementById('login').requestSubmit(); true");
        await browser.WaitForAsync("document.getElementById('rule-per-user-subjects') !== null", TimeSpan.FromSeconds(10));
        Assert.Equal(token.Secret, (string?)await browser.EvaluateAsync("sessionStorage.getItem('floodgate.admin.token')"));

        using var admin = token.Client(gateway.Host.AdminAddress!);
        using var response = await admin.GetAsync("/admin/v1/dashboard");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var perUser = json.GetProperty("rules").EnumerateArray().Single(r => r.GetProperty("rule").GetString() == "per-user").GetProperty("rejected");
        string Rows(JsonElement hitters) => string.Join("|", hitters.EnumerateArray().Select(h => $"{h.GetProperty("key").GetString()} {h.GetProperty("count").GetInt64()} {h.GetProperty("error").GetInt64()}"));
        const string PageRows = "Array.from(document.querySelectorAll('#{0} tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent).join(' ')).join('|')";

        Assert.Equal("alice 3 0|bob 1 0", Rows(perUser.GetProperty("subjects")));
        Assert.Equal(Rows(perUser.GetProperty("subjects")), (string?)await browser.EvaluateAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, PageRows, "rule-per-user-subjects")));
        Assert.Equal("198.51.100.0/24 3 0|2001:db8:1:2::/64 1 0", Rows(perUser.GetProperty("networks")));
        Assert.Equal(Rows(perUser.GetProperty("networks")), (string?)await browser.EvaluateAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, PageRows, "rule-per-user-networks")));
        Assert.Equal($"Rejected: {perUser.GetProperty("total").GetInt64()}", ((string?)await browser.EvaluateAsync("document.querySelector('#rule-per-user .totals').textContent"))?.Split(" · ")[0]);
        Assert.Equal(json.GetProperty("policy").GetProperty("version").GetString(), (string?)await browser.EvaluateAsync("document.getElementById('policy-version').textContent"));
        Assert.Equal("memory", (string?)await browser.EvaluateAsync("document.getElementById('store-kind').textContent"));
        Assert.Contains("shadow would-be rejections", (string?)await browser.EvaluateAsync("document.querySelector('#rule-shadowed .totals').textContent"), StringComparison.Ordinal);
        Assert.NotNull(await browser.EvaluateAsync("document.querySelector('#rate-user-rejected .total')?.textContent"));

        var screenshot = await browser.ScreenshotAsync();
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], screenshot[..4]);
        if (Environment.GetEnvironmentVariable("FLOODGATE_DASHBOARD_SCREENSHOT") is { Length: > 0 } keep)
        {
            await File.WriteAllBytesAsync(keep, screenshot);
        }
    }

    [Fact]
    public async Task The_page_works_under_a_trailing_slash_and_lists_the_current_bans()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync("upstream: {upstream}\n" + token.Section);
        using var admin = token.Client(gateway.Host.AdminAddress!);
        using (var ban = await admin.PostAsJsonAsync("/admin/v1/bans", new { kind = "cidr", target = "203.0.113.0/24", ttl = "1h" }))
        {
            Assert.Equal(HttpStatusCode.Created, ban.StatusCode);
        }

        await using var browser = await HeadlessChromium.StartAsync();
        await browser.NavigateAsync(new Uri(gateway.Host.AdminAddress!, "/admin/dashboard/"));
        await browser.WaitForAsync("document.readyState === 'complete' && document.getElementById('token') !== null", TimeSpan.FromSeconds(20));
        await browser.EvaluateAsync($"document.getElementById('token').value = {JsonSerializer.Serialize(token.Secret)}; document.getElementById('login').requestSubmit(); true");
        await browser.WaitForAsync("document.getElementById('bans-count').textContent === '1'", TimeSpan.FromSeconds(10));

        var expiresAt = gateway.Time.GetUtcNow().AddHours(1).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal($"cidr 203.0.113.0/24 admin {expiresAt}", (string?)await browser.EvaluateAsync("Array.from(document.querySelectorAll('#bans tr')[0].cells).map(c => c.textContent).join(' ')"));
        Assert.StartsWith("Updated ", (string?)await browser.EvaluateAsync("document.getElementById('status').textContent"), StringComparison.Ordinal);
    }
}
