using System.Net;

namespace Floodgate.Gateway.Tests;

public sealed class KeyingTests
{
    [Fact]
    public async Task Anonymous_clients_in_one_ipv6_64_share_a_budget_and_ipv4_mapped_is_ipv4()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8]
            user:
              - name: per-user
                key: [subject]
                limit: 1/min
            """);

        Statuses.Expect([200], await gate.StatusesAsync(1, "/a", forwardedFor: "2001:db8:1:2::1"));
        Statuses.Expect([429], await gate.StatusesAsync(1, "/a", forwardedFor: "2001:db8:1:2:ffff::9"));
        Statuses.Expect([200], await gate.StatusesAsync(1, "/a", forwardedFor: "2001:db8:1:3::1"));
        Statuses.Expect([200], await gate.StatusesAsync(1, "/a", forwardedFor: "198.51.100.7"));
        Statuses.Expect([429], await gate.StatusesAsync(1, "/a", forwardedFor: "[::ffff:198.51.100.7]"));
    }

    [Fact]
    public async Task A_ban_covers_the_whole_ipv6_64()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8]
            edge:
              - name: ip-flood
                limit: 1/min
                ban: 60s
            """);

        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/x", forwardedFor: "2001:db8:1:2::1"));
        using var neighbour = await gate.GetAsync("/x", forwardedFor: "2001:db8:1:2::2");
        Assert.Equal(HttpStatusCode.TooManyRequests, neighbour.StatusCode);
        Assert.Contains("is banned", await neighbour.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(1, gate.Upstream.Hits);
    }

    [Fact]
    public async Task Alice_is_limited_while_bob_is_not()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            user:
              - name: per-user
                limit: 2/min
            """);
        var now = gate.Time.GetUtcNow();
        var alice = gate.Identity.CreateToken(subject: "alice", now: now);
        var bob = gate.Identity.CreateToken(subject: "bob", now: now);

        Statuses.Expect([200, 200, 429, 429], await gate.StatusesAsync(4, "/a", alice));
        Statuses.Expect([200, 200], await gate.StatusesAsync(2, "/a", bob));
    }

    [Fact]
    public async Task Two_different_tokens_for_the_same_subject_share_one_budget()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            user:
              - name: per-user
                key: [subject]
                limit: 3/min
            """);
        var now = gate.Time.GetUtcNow();
        var rsa = gate.Identity.CreateToken(TestIdentityProvider.RsaKeyId, "alice", now);
        var ec = gate.Identity.CreateToken(TestIdentityProvider.EcKeyId, "alice", now - TimeSpan.FromMinutes(1));
        Assert.NotEqual(rsa, ec);

        Statuses.Expect([200, 200], await gate.StatusesAsync(2, "/a", rsa));
        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/a", ec));
    }

    [Fact]
    public async Task Paths_of_one_route_template_share_its_budget()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            user:
              - name: order-reads
                match: { route: "/orders/{id}" }
                key: [subject, route]
                limit: 2/min
            """);
        var alice = gate.Identity.CreateToken(subject: "alice", now: gate.Time.GetUtcNow());

        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/orders/1", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/orders/2", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await gate.GetAsync("/orders/3", alice)).StatusCode);

        // Other routes are not charged.
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/orders", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/orders/1/lines", alice)).StatusCode);
    }

    [Fact]
    public async Task A_yarp_route_template_names_the_route_in_keys()
    {
        await using var gate = await TestGateway.StartAsync("""
            routes:
              - id: orders
                path: "/orders/{id}"
                cluster: app
              - id: rest
                path: "/{**rest}"
                cluster: app
            clusters:
              app:
                destinations: ["{upstream}"]
            {identity}
            user:
              - name: per-route
                key: [subject, route]
                limit: 2/min
            """);
        var alice = gate.Identity.CreateToken(subject: "alice", now: gate.Time.GetUtcNow());

        // /orders/1 and /orders/2 are both the YARP route /orders/{id}: one budget.
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/orders/1", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/orders/2", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await gate.GetAsync("/orders/3", alice)).StatusCode);

        // The catch-all route names no template, so each path is its own key.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/catalog", alice));
        Statuses.Expect([200], await gate.StatusesAsync(1, "/basket", alice));
    }
}
