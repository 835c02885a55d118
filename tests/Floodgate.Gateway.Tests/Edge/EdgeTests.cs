using System.Globalization;
using System.Net;

namespace Floodgate.Gateway.Tests;

public sealed class EdgeTests
{
    [Fact]
    public async Task Edge_limits_per_ip_and_ignores_forwarded_for_from_an_untrusted_peer()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [10.0.0.0/8]
            edge:
              - name: ip-flood
                key: [client_ip]
                limit: 3/min
            """);

        // The peer (127.0.0.1) is not a trusted proxy: each spoofed X-Forwarded-For is ignored, so all share one budget.
        var statuses = new List<int>();
        for (var i = 0; i < 5; i++)
        {
            using var response = await gate.GetAsync("/any", forwardedFor: $"203.0.113.{i}");
            statuses.Add((int)response.StatusCode);
        }

        Statuses.Expect([200, 200, 200, 429, 429], [.. statuses]);
        Assert.Equal(3, gate.Upstream.Hits);
    }

    [Fact]
    public async Task Edge_keys_on_the_forwarded_client_when_the_peer_is_a_trusted_proxy()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]
            edge:
              - name: ip-flood
                limit: 2/min
            """);

        // X-Forwarded-For is walked from the right while hops are trusted: 10.1.2.3 is a trusted proxy, 198.51.100.7 the client.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", forwardedFor: "192.0.2.99, 198.51.100.7, 10.1.2.3"));

        // Another client through the same proxies has its own budget.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", forwardedFor: "198.51.100.8"));

        // Only X-Forwarded-For (the default forwarded_header) is read: a Forwarded header the client sent, which the
        // proxy passed through, does not choose its IP, so 198.51.100.7 is still out of budget.
        using var spoofed = await gate.GetAsync("/a", forwardedFor: "198.51.100.7", forwarded: "for=198.51.100.9");
        Assert.Equal(HttpStatusCode.TooManyRequests, spoofed.StatusCode);
    }

    [Fact]
    public async Task Edge_reads_only_forwarded_when_the_policy_names_it()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]
            forwarded_header: forwarded
            edge:
              - name: ip-flood
                limit: 1/min
            """);

        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/a", forwardedFor: "198.51.100.7"));

        // RFC 7239 Forwarded names the client; the X-Forwarded-For the client sent is ignored.
        using var viaForwarded = await gate.GetAsync("/a", forwardedFor: "198.51.100.7", forwarded: "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.5");
        Assert.Equal(HttpStatusCode.OK, viaForwarded.StatusCode);
        using var again = await gate.GetAsync("/a", forwardedFor: "198.51.100.8", forwarded: "for=\"[2001:db8::1]:4711\"");
        Assert.Equal(HttpStatusCode.TooManyRequests, again.StatusCode);
    }

    [Fact]
    public async Task Edge_ban_refuses_the_ip_until_the_mitigation_timeout_ends()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: ip-flood
                limit: 2/min
                ban: 60s
            """);

        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/x"));

        // 45 seconds later the bucket has refilled one request, but the ban holds, and it is not charged to the rule.
        gate.Time.Advance(TimeSpan.FromSeconds(45));
        using (var banned = await gate.GetAsync("/x"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            Assert.Equal("15", banned.Header("Retry-After"));
            Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        gate.Time.Advance(TimeSpan.FromSeconds(16));
        using var after = await gate.GetAsync("/x");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(3, gate.Upstream.Hits);
    }

    [Fact]
    public async Task An_unreachable_redis_never_looks_like_a_ban()
    {
        // Nothing listens on this port. The store fails closed, so the edge rule answers 503; the ban's probe, decided in
        // the same call, is allowed while the store is unreachable, so no request is ever answered as banned.
        var port = RedisServer.FreePort(cluster: false).ToString(CultureInfo.InvariantCulture);
        await using var gate = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            store: { kind: redis, configuration: "127.0.0.1:{{port}},connectTimeout=200", on_failure: closed, timeout: 200ms }
            edge:
              - name: ip-flood
                limit: 2/min
                ban: 60s
            """);

        for (var i = 0; i < 4; i++)
        {
            using var outage = await gate.GetAsync("/x");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, outage.StatusCode);
            var body = await outage.Content.ReadAsStringAsync();
            Assert.Contains("cannot be reached", body, StringComparison.Ordinal);
            Assert.DoesNotContain("banned", body, StringComparison.Ordinal);
        }

        Assert.Equal(0, gate.Upstream.Hits);
    }
}
