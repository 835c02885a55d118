using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests;

/// <summary>Bans through the admin API and CLI: IP, network and subject, with a TTL; listed on the dashboard.</summary>
public sealed class BanTests
{
    private static async Task<string[]> DashboardBansAsync(HttpClient admin)
    {
        var dashboard = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/dashboard")).RootElement;
        return [.. dashboard.GetProperty("bans").EnumerateArray().Select(b => $"{b.GetProperty("kind").GetString()}:{b.GetProperty("target").GetString()}:{b.GetProperty("source").GetString()}").Order(StringComparer.Ordinal)];
    }

    [Fact]
    public async Task Ip_network_and_subject_bans_refuse_their_requests_are_listed_lifted_and_lapse_on_time()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            {identity}
            trusted_proxies: [127.0.0.0/8]
            user:
              - name: per-user
                limit: 100/min
            {{token.Section}}
            """);
        using var admin = token.Client(gateway.Host.AdminAddress!);
        var alice = gateway.Identity.CreateToken(subject: "alice");
        var mallory = gateway.Identity.CreateToken(subject: "mallory");

        using (var ip = await admin.PostAsJsonAsync("/admin/v1/bans", new { kind = "ip", target = "198.51.100.7", ttl = "10m" }))
        {
            Assert.Equal(HttpStatusCode.Created, ip.StatusCode);
            var created = JsonDocument.Parse(await ip.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("admin", created.GetProperty("source").GetString());
            Assert.Equal(gateway.Time.GetUtcNow().AddMinutes(10), created.GetProperty("expiresAt").GetDateTimeOffset());
        }

        using (var network = await admin.PostAsJsonAsync("/admin/v1/bans", new { kind = "cidr", target = "203.0.113.99/24", ttl = "20m" }))
        {
            Assert.Equal(HttpStatusCode.Created, network.StatusCode);
            Assert.EndsWith("/admin/v1/bans/cidr/203.0.113.0/24", network.Headers.Location!.ToString(), StringComparison.Ordinal);
        }

        // Listed latest first: the subject's ban is set a second after the others.
        gateway.Time.Advance(TimeSpan.FromSeconds(1));
        using (var subject = await admin.PostAsJsonAsync("/admin/v1/bans", new { kind = "subject", target = "mallory", ttl = "30m" }))
        {
            Assert.Equal(HttpStatusCode.Created, subject.StatusCode);
        }

        using (var banned = await gateway.SendAsync(HttpMethod.Get, "/x", alice, forwardedFor: "198.51.100.7"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            Assert.Equal("599", banned.Header("Retry-After"));
            Assert.Contains("This client is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var inNetwork = await gateway.SendAsync(HttpMethod.Get, "/x", alice, forwardedFor: "203.0.113.250"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, inNetwork.StatusCode);
        }

        using (var bannedSubject = await gateway.SendAsync(HttpMethod.Get, "/x", mallory, forwardedFor: "192.0.2.1"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, bannedSubject.StatusCode);
            Assert.Contains("This subject is banned", await bannedSubject.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var free = await gateway.SendAsync(HttpMethod.Get, "/x", alice, forwardedFor: "192.0.2.1"))
        {
            Assert.Equal(HttpStatusCode.OK, free.StatusCode);
        }

        Assert.Equal(1, gateway.Upstream.Hits);
        Assert.Equal(["cidr:203.0.113.0/24:admin", "ip:198.51.100.7:admin", "subject:mallory:admin"], await DashboardBansAsync(admin));
        var listed = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/bans?limit=1")).RootElement;
        Assert.Equal("mallory", Assert.Single(listed.GetProperty("bans").EnumerateArray()).GetProperty("target").GetString());

        // Lifted: the address is served at once. A network is named by its path, '/' and all.
        using (var lifted = await admin.DeleteAsync("/admin/v1/bans/ip/198.51.100.7"))
        {
            Assert.Equal(HttpStatusCode.NoContent, lifted.StatusCode);
        }

        using (var again = await gateway.SendAsync(HttpMethod.Get, "/x", alice, forwardedFor: "198.51.100.7"))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        using (var gone = await admin.DeleteAsync("/admin/v1/bans/ip/198.51.100.7"))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        // The network's 20 minutes pass: it lapses, and the listing prunes it; the subject's 30 do not.
        gateway.Time.Advance(TimeSpan.FromMinutes(20) - TimeSpan.FromSeconds(1));
        using (var lapsed = await gateway.SendAsync(HttpMethod.Get, "/x", alice, forwardedFor: "203.0.113.250"))
        {
            Assert.Equal(HttpStatusCode.OK, lapsed.StatusCode);
        }

        Assert.Equal(["subject:mallory:admin"], await DashboardBansAsync(admin));
    }

    [Fact]
    public async Task An_edge_rules_ban_is_listed_and_lifting_it_resets_its_key()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            edge:
              - name: ip-flood
                limit: 2/min
                ban: 60s
            {{token.Section}}
            """);
        using var admin = token.Client(gateway.Host.AdminAddress!);
        Statuses.Expect([200, 200, 429], await gateway.StatusesAsync(3, "/x"));

        // Listed in the background, after the rejection was answered.
        Assert.True(await Eventually.HoldsAsync(async () => (await DashboardBansAsync(admin)).SequenceEqual(["ip:127.0.0.1:ip-flood"]), TimeSpan.FromSeconds(5)));

        // 30 s on, the rule would admit one more, but the ban holds; lifted, the rule's refill is served.
        gateway.Time.Advance(TimeSpan.FromSeconds(30));
        using (var banned = await gateway.GetAsync("/x"))
        {
            Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var lifted = await admin.DeleteAsync("/admin/v1/bans/ip/127.0.0.1"))
        {
            Assert.Equal(HttpStatusCode.NoContent, lifted.StatusCode);
        }

        Statuses.Expect([200, 429], await gateway.StatusesAsync(2, "/x"));
        Assert.Equal(3, gateway.Upstream.Hits);
    }

    [Fact]
    public async Task Bad_ban_input_is_a_400_naming_the_field()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync("upstream: {upstream}\n" + token.Section);
        using var admin = token.Client(gateway.Host.AdminAddress!);
        var cases = new (object Body, string Field)[]
        {
            (new { kind = "host", target = "example.com", ttl = "1h" }, "kind"),
            (new { kind = "ip", target = "198.51.100.0/24", ttl = "1h" }, "target"),
            (new { kind = "cidr", target = "198.51.100.0/40", ttl = "1h" }, "target"),
            (new { kind = "subject", target = new string('s', 300), ttl = "1h" }, "target"),
            (new { kind = "ip", target = "198.51.100.1", ttl = (string?)null }, "ttl"),
            (new { kind = "ip", target = "198.51.100.1", ttl = "-5m" }, "ttl"),
        };
        foreach (var (body, field) in cases)
        {
            using var response = await admin.PostAsJsonAsync("/admin/v1/bans", body);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), problem.ToString());
        }

        using var badKind = await admin.DeleteAsync("/admin/v1/bans/host/example.com");
        Assert.Equal(HttpStatusCode.BadRequest, badKind.StatusCode);
    }

    [Fact]
    public async Task A_ban_set_on_one_replica_refuses_on_the_other_within_a_second_and_shows_on_its_dashboard()
    {
        using var redis = RedisServer.Start();
        using var token = new AdminTokens();
        var policy = $$"""
            upstream: {upstream}
            store: { kind: redis, configuration: "{{redis.Configuration}}", on_failure: closed, timeout: 2s }
            trusted_proxies: [127.0.0.0/8]
            edge:
              - name: per-ip
                limit: 1000/min
            {{token.Section}}
            """;
        await using var a = await TestGateway.StartAsync(policy);
        await using var b = await TestGateway.StartAsync(policy);
        using var adminA = token.Client(a.Host.AdminAddress!);
        using var adminB = token.Client(b.Host.AdminAddress!);

        using (var set = await adminA.PostAsJsonAsync("/admin/v1/bans", new { kind = "cidr", target = "2001:db8:7::/48", ttl = "1h" }))
        {
            Assert.Equal(HttpStatusCode.Created, set.StatusCode);
        }

        var watch = Stopwatch.StartNew();
        int status;
        do
        {
            using var response = await b.GetAsync("/x", forwardedFor: "2001:db8:7:1::9");
            status = (int)response.StatusCode;
        }
        while (status != 429 && watch.Elapsed < TimeSpan.FromSeconds(1));
        Assert.Equal(429, status);
        Assert.Equal(["cidr:2001:db8:7::/48:admin"], await DashboardBansAsync(adminB));

        using (var lifted = await adminB.DeleteAsync("/admin/v1/bans/cidr/2001:db8:7::/48"))
        {
            Assert.Equal(HttpStatusCode.NoContent, lifted.StatusCode);
        }

        Assert.True(await Eventually.HoldsAsync(async () =>
        {
            using var response = await a.GetAsync("/x", forwardedFor: "2001:db8:7:1::9");
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task The_admin_cli_adds_lists_and_lifts_bans()
    {
        using var token = new AdminTokens("cli");
        await using var gateway = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8]
            {{token.Section}}
            """);
        string[] Common(params string[] args) => ["admin", .. args, "--address", gateway.Host.AdminAddress!.ToString(), "--token-file", token.File];

        var (code, output, errors) = await RunAsync(Common("ban", "add", "cidr", "198.51.100.0/24", "--ttl", "2h"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("cidr 198.51.100.0/24: set by admin, until ", output, StringComparison.Ordinal);
        using (var banned = await gateway.GetAsync("/x", forwardedFor: "198.51.100.3"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        }

        (code, output, errors) = await RunAsync(Common("ban", "list"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("cidr 198.51.100.0/24: set by admin", output.Trim(), StringComparison.Ordinal);

        (code, output, errors) = await RunAsync(Common("ban", "list", "--json"));
        Assert.True(code == 0, errors);
        Assert.Equal("198.51.100.0/24", JsonDocument.Parse(output).RootElement.GetProperty("bans")[0].GetProperty("target").GetString());

        (code, output, errors) = await RunAsync(Common("ban", "remove", "cidr", "198.51.100.0/24"));
        Assert.True(code == 0, errors);
        Assert.Equal("lifted the ban on cidr 198.51.100.0/24", output.Trim());
        (code, output, _) = await RunAsync(Common("ban", "list"));
        Assert.Equal("no bans", output.Trim());

        (code, _, errors) = await RunAsync(Common("ban", "add", "ip", "not-an-ip", "--ttl", "1h"));
        Assert.Equal(1, code);
        Assert.StartsWith("400: target: 'not-an-ip' is not an IP address.", errors.Trim(), StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output, string Errors)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await GatewayCli.Build(output, errors).Parse(args).InvokeAsync();
        return (code, output.ToString(), errors.ToString());
    }
}
