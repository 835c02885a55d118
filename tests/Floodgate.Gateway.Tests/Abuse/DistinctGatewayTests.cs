using System.Net;
using Floodgate.Testing;

namespace Floodgate.Gateway.Tests.Abuse;

/// <summary>Distinct rules on real gateways over a real redis-server: one key's addresses counted across two replicas, and its ban shared.</summary>
public sealed class DistinctGatewayTests
{
    [Fact]
    public async Task A_subject_seen_from_too_many_addresses_across_two_replicas_is_banned_on_both()
    {
        using var redis = RedisServer.Start();
        var policy = $$"""
            upstream: {upstream}
            {identity}
            trusted_proxies: [127.0.0.0/8]
            store: { kind: redis, configuration: "{{redis.Configuration}}", timeout: 2s }
            user:
              - name: stolen-key
                distinct: { of: client_ip, action: ban, ban: 10m }
                limit: 6/hour
              - name: per-user
                limit: 1000/min
            """;
        await using var a = await TestGateway.StartAsync(policy);
        await using var b = await TestGateway.StartAsync(policy);
        var alice = a.Identity.CreateToken(subject: "alice");
        var aliceOnB = b.Identity.CreateToken(subject: "alice");
        var bob = b.Identity.CreateToken(subject: "bob");

        // Six addresses, alternating replicas, each twice: counted once each, in one set.
        for (var i = 1; i <= 6; i++)
        {
            Statuses.Expect([200], await a.StatusesAsync(1, "/x", alice, forwardedFor: $"198.51.100.{i}"));
            Statuses.Expect([200], await b.StatusesAsync(1, "/x", aliceOnB, forwardedFor: $"198.51.100.{i}"));
        }

        // The seventh, on B, is over: alice is banned through the ban store, and A refuses her too once it sees the ban.
        using var banned = await b.GetAsync("/x", aliceOnB, forwardedFor: "198.51.100.7");
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Contains("This subject went over the distinct rule 'stolen-key' and is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.True(await Eventually.HoldsAsync(
            async () => (await a.StatusesAsync(1, "/x", alice, forwardedFor: "198.51.100.1"))[0] == 429, TimeSpan.FromSeconds(3)));
        Statuses.Expect([200], await b.StatusesAsync(1, "/x", bob, forwardedFor: "198.51.100.7"));
    }
}
