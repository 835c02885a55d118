using System.Net;
using Floodgate.Tests.Shared;

namespace Floodgate.Gateway.Tests;

public sealed class KeyingTests
{
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
