using System.Net;
using Floodgate.AspNetCore.Tests.Middleware;
using Floodgate.Costs;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Tests.Abuse;

/// <summary>A rule that counts only failed logins (401 and 403) per client, settled after the response, ending in a ban.</summary>
public sealed class ResponseStatusCountingTests
{
    private static Task<TestApp> StartAsync() => TestApp.StartAsync(
        o =>
        {
            o.Policy = new RateLimitPolicy([
                new RateLimitRule("login-failures", RateLimitTier.Edge, Limit.FixedWindow(Rate.Parse("3/10min")))
                {
                    Match = new RuleMatch { Paths = [new PathGlob("/login")] },
                    Key = [KeyPart.ClientIp],
                    Costs = new RuleCost { Measure = CostMeasure.ResponseStatus, Statuses = [401, 403], Unit = "responses" },
                },
            ]);
            o.Bans["login-failures"] = TimeSpan.FromMinutes(15);
            o.TrustedProxies.Add("127.0.0.1/32");
        },
        app => app.MapPost("/login", (HttpContext context) =>
            context.Request.Headers["X-Password"] == "right" ? Results.Ok("welcome")
            : context.Request.Headers["X-Password"] == "locked" ? Results.StatusCode(403)
            : Results.Unauthorized()));

    private static async Task<HttpStatusCode> LoginAsync(TestApp app, string password, string ip = "203.0.113.7")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/login");
        request.Headers.Add("X-Password", password);
        request.Headers.Add("X-Forwarded-For", ip);
        using var response = await app.Client.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task Only_failed_logins_count_and_a_client_over_the_limit_is_banned_at_admission()
    {
        await using var app = await StartAsync();

        // Successful logins count nothing, however many.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await LoginAsync(app, "right"));
        }

        // Three failures (401 and 403) are within the limit; the fourth takes the client over, after its response.
        Assert.Equal(HttpStatusCode.Unauthorized, await LoginAsync(app, "wrong"));
        Assert.Equal(HttpStatusCode.Forbidden, await LoginAsync(app, "locked"));
        Assert.Equal(HttpStatusCode.Unauthorized, await LoginAsync(app, "wrong"));
        Assert.Equal(HttpStatusCode.OK, await LoginAsync(app, "right"));
        Assert.Equal(HttpStatusCode.Unauthorized, await LoginAsync(app, "wrong"));

        // The next request, even with the right password, is refused at admission and starts the ban.
        Assert.Equal(HttpStatusCode.TooManyRequests, await LoginAsync(app, "right"));

        // Banned for 15 minutes: after the failures' window has passed, still refused; another client is not.
        app.Time.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal(HttpStatusCode.TooManyRequests, await LoginAsync(app, "right"));
        Assert.Equal(HttpStatusCode.OK, await LoginAsync(app, "right", "203.0.113.8"));
        app.Time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(HttpStatusCode.OK, await LoginAsync(app, "right"));
    }

    [Fact]
    public void The_charge_is_one_per_listed_status_and_nothing_otherwise()
    {
        var cost = new RuleCost { Measure = CostMeasure.ResponseStatus, Statuses = [401, 403] };
        Assert.Equal(1, cost.Charge(new CostReport { StatusCode = 401 }, out _));
        Assert.Equal(1, cost.Charge(new CostReport { StatusCode = 403 }, out _));
        Assert.Equal(0, cost.Charge(new CostReport { StatusCode = 200 }, out _));
        Assert.Null(cost.Charge(new CostReport(), out _));
        Assert.False(cost.ReadsBodyUsage);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RuleCost { Statuses = [99] });
    }
}
