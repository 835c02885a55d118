using System.Net;
using System.Security.Claims;
using Floodgate.Abuse;
using Floodgate.AspNetCore.Tests.Middleware;
using Floodgate.Bans;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.AspNetCore.Tests.Abuse;

/// <summary>Distinct rules in the middleware, on real Kestrel: reject, ban through the ban store, flag only.</summary>
public sealed class DistinctRuleMiddlewareTests
{
    private static Task<TestApp> StartAsync(RateLimitRule rule, MemoryBanStore? bans = null) => TestApp.StartAsync(
        o =>
        {
            o.Policy = new RateLimitPolicy([rule, new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1000/min")))]);
            o.TrustedProxies.Add("127.0.0.1/32");
        },
        app => app.MapGet("/api", () => "ok"),
        before: app => app.Use((context, next) =>
        {
            var user = context.Request.Headers["X-User"].ToString();
            if (user.Length > 0)
            {
                context.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim("sub", user)], "test"));
            }

            return next(context);
        }),
        services: bans is null ? null : s => s.AddSingleton<IBanStore>(bans));

    private static async Task<HttpResponseMessage> SendAsync(TestApp app, string user, string ip)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api");
        request.Headers.Add("X-User", user);
        request.Headers.Add("X-Forwarded-For", ip);
        return await app.Client.SendAsync(request);
    }

    [Fact]
    public async Task A_key_used_from_too_many_networks_is_refused_403_until_the_window_ends()
    {
        var rule = new RateLimitRule("stolen-key", RateLimitTier.User, Limit.FixedWindow(Rate.Parse("3/hour")))
        {
            Key = [KeyPart.Subject],
            Distinct = new DistinctCounting { Of = KeyPart.ClientIp, Ipv4Prefix = 24, RejectStatus = 403 },
        };
        await using var app = await StartAsync(rule);
        for (var net = 1; net <= 3; net++)
        {
            for (var host = 1; host <= 5; host++)
            {
                using var ok = await SendAsync(app, "alice", $"198.51.{net}.{host}");
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            }
        }

        using var refused = await SendAsync(app, "alice", "198.51.4.1");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Too many distinct networks", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.NotNull(refused.Headers.RetryAfter);

        using var again = await SendAsync(app, "alice", "198.51.1.1");
        Assert.Equal(HttpStatusCode.Forbidden, again.StatusCode);
        using var bob = await SendAsync(app, "bob", "198.51.4.1");
        Assert.Equal(HttpStatusCode.OK, bob.StatusCode);

        app.Time.Advance(TimeSpan.FromHours(1));
        using var next = await SendAsync(app, "alice", "198.51.9.1");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task An_address_trying_too_many_subjects_is_banned_in_the_ban_store()
    {
        var bans = new MemoryBanStore();
        var rule = new RateLimitRule("stuffing", RateLimitTier.User, Limit.FixedWindow(Rate.Parse("4/10min")))
        {
            Key = [KeyPart.ClientIp],
            Distinct = new DistinctCounting { Of = KeyPart.Subject, Action = DistinctAction.Ban, BanDuration = TimeSpan.FromMinutes(30) },
        };
        await using var app = await StartAsync(rule, bans);
        for (var i = 0; i < 4; i++)
        {
            using var ok = await SendAsync(app, $"user{i}", "203.0.113.50");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var banned = await SendAsync(app, "user4", "203.0.113.50");
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Contains("This client went over the distinct rule 'stuffing' and is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var ban = Assert.Single(await bans.ListAsync(10));
        Assert.Equal("ip:203.0.113.50", ban.Id);
        Assert.Equal("stuffing", ban.Source);
        Assert.Equal(TimeSpan.FromMinutes(30), ban.ExpiresAt - ban.CreatedAt);

        // Banned now for any subject, with no count of its own; another address is not.
        using var after = await SendAsync(app, "user0", "203.0.113.50");
        Assert.Equal(HttpStatusCode.TooManyRequests, after.StatusCode);
        Assert.Contains("went over the distinct rule 'stuffing'", await after.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var other = await SendAsync(app, "user0", "203.0.113.51");
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task A_flagging_rule_lets_every_request_through()
    {
        var rule = new RateLimitRule("watch", RateLimitTier.User, Limit.FixedWindow(Rate.Parse("2/hour")))
        {
            Key = [KeyPart.Subject],
            Distinct = new DistinctCounting { Of = KeyPart.ClientIp, Action = DistinctAction.Flag },
        };
        await using var app = await StartAsync(rule);
        for (var i = 1; i <= 10; i++)
        {
            using var ok = await SendAsync(app, "alice", $"198.51.100.{i}");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
    }
}
