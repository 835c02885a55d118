using System.Net;
using System.Text;
using System.Text.Json;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// Every answer that is not the app's: status, headers and the whole problem details body, field by field, parsed
/// strictly (one JSON object, nothing after it). Found missing by mutation testing (docs/testing.md): the tests read a
/// few words of the detail and left the title, tier and the singular "second" unread.
/// </summary>
public sealed class ProblemDetailsTests
{
    [Theory]
    [InlineData(599_750_000L, 600L, "seconds")]
    [InlineData(500_000L, 1L, "second")]
    public async Task A_ban_is_answered_429_with_its_rule_and_time_left(long remainingMicroseconds, long seconds, string unit)
    {
        var context = NewContext();
        await RateLimitResponses.WriteBanAsync(context, "ip-flood", TimeSpan.FromMicroseconds(remainingMicroseconds));
        var body = Body(context);
        Assert.Equal(StatusCodes.Status429TooManyRequests, context.Response.StatusCode);
        Assert.Equal(seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), context.Response.Headers.RetryAfter.ToString());
        Assert.Equal("application/problem+json", context.Response.ContentType);
        Assert.Equal("no-store", context.Response.Headers.CacheControl.ToString());
        Assert.Equal("about:blank", body.GetProperty("type").GetString());
        Assert.Equal("Too Many Requests", body.GetProperty("title").GetString());
        Assert.Equal(429, body.GetProperty("status").GetInt32());
        Assert.Equal($"This client went over the edge rule 'ip-flood' and is banned; retry after {seconds} {unit}.", body.GetProperty("detail").GetString());
        Assert.Equal("edge", body.GetProperty("tier").GetString());
        Assert.Equal("ip-flood", body.GetProperty("rule").GetString());
        Assert.Equal(seconds, body.GetProperty("retryAfter").GetInt64());
    }

    [Fact]
    public async Task A_missing_token_is_answered_401_with_a_bare_challenge()
    {
        var context = NewContext();
        await RateLimitResponses.WriteUnauthorizedAsync(context, null, null);
        var body = Body(context);
        Assert.Equal(StatusCodes.Status401Unauthorized, context.Response.StatusCode);
        Assert.Equal("Bearer", context.Response.Headers.WWWAuthenticate.ToString());
        Assert.False(context.Response.Headers.ContainsKey("Retry-After"));
        Assert.Equal("Unauthorized", body.GetProperty("title").GetString());
        Assert.Equal(401, body.GetProperty("status").GetInt32());
        Assert.Equal("This API requires a bearer token.", body.GetProperty("detail").GetString());
        Assert.Equal("identity", body.GetProperty("tier").GetString());
        Assert.False(body.TryGetProperty("rule", out _));
        Assert.False(body.TryGetProperty("retryAfter", out _));
    }

    [Fact]
    public async Task A_refused_token_s_challenge_carries_only_printable_ascii()
    {
        // Quotes, backslashes, control characters and anything past '~' become apostrophes; ' ' and '~' stay.
        var context = NewContext();
        await RateLimitResponses.WriteUnauthorizedAsync(context, "invalid_token", "bad \"sig\"\\\t\u00e9 ~\u007f!");
        Assert.Equal("Bearer error=\"invalid_token\", error_description=\"bad 'sig'''' ~'!\"", context.Response.Headers.WWWAuthenticate.ToString());
        Assert.Equal("The bearer token was refused: bad \"sig\"\\\t\u00e9 ~\u007f!.", Body(context).GetProperty("detail").GetString());

        context = NewContext();
        await RateLimitResponses.WriteUnauthorizedAsync(context, "invalid_token", null);
        Assert.Equal("Bearer error=\"invalid_token\", error_description=\"\"", context.Response.Headers.WWWAuthenticate.ToString());
        Assert.Equal("The bearer token was refused: invalid_token.", Body(context).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Credentials_that_cannot_be_checked_now_are_answered_503_with_a_retry()
    {
        var context = NewContext();
        await RateLimitResponses.WriteIdentityUnavailableAsync(context, null, TimeSpan.FromMilliseconds(1200));
        var body = Body(context);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, context.Response.StatusCode);
        Assert.Equal("2", context.Response.Headers.RetryAfter.ToString());
        Assert.False(context.Response.Headers.ContainsKey("WWW-Authenticate"));
        Assert.Equal("Service Unavailable", body.GetProperty("title").GetString());
        Assert.Equal("The bearer token cannot be checked now (identity unavailable); retry after 2 seconds.", body.GetProperty("detail").GetString());
        Assert.Equal("identity", body.GetProperty("tier").GetString());
    }

    [Fact]
    public async Task The_writers_refuse_a_missing_context()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => RateLimitResponses.WriteBanAsync(null!, "r", TimeSpan.Zero));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RateLimitResponses.WriteUnauthorizedAsync(null!, null, null));
        await Assert.ThrowsAsync<ArgumentNullException>(() => RateLimitResponses.WriteRejectionAsync(null!, default, true, true));
        Assert.Throws<ArgumentNullException>(() => RateLimitResponses.WriteHeaders(null!, default, true, true));
    }

    [Theory]
    [InlineData(RateLimitTier.Edge, 429, "Too Many Requests")]
    [InlineData(RateLimitTier.User, 429, "Too Many Requests")]
    [InlineData(RateLimitTier.Service, 503, "Service Unavailable")]
    [InlineData(RateLimitTier.Global, 503, "Service Unavailable")]
    public async Task A_rejection_names_its_tier_and_rule(RateLimitTier tier, int status, string title)
    {
        await using var app = await TestApp.StartAsync(
            o => o.Policy = new RateLimitPolicy([new RateLimitRule("only-one", tier, Limit.Gcra(Rate.Parse("1/min")))]),
            a => a.MapGet("/", () => "hi"));
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
        using var rejected = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(status, (int)rejected.StatusCode);
        var body = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement;
        var name = tier.ToString().ToLowerInvariant();
        Assert.Equal(title, body.GetProperty("title").GetString());
        Assert.Equal(status, body.GetProperty("status").GetInt32());
        Assert.Equal(name, body.GetProperty("tier").GetString());
        Assert.Equal("only-one", body.GetProperty("rule").GetString());
        Assert.Equal($"The {name} rule 'only-one' is over its limit; retry after 60 seconds.", body.GetProperty("detail").GetString());
        Assert.Equal(60, body.GetProperty("retryAfter").GetInt64());
    }

    [Fact]
    public async Task Of_two_bans_the_one_in_force_answers_alone()
    {
        // Both edge rules see every request and both have bans; only the second is exceeded, so only its ban starts,
        // and a banned request is answered once, by that ban.
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy(
                [
                    new RateLimitRule("ip-generous", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("100/min"))),
                    new RateLimitRule("ip-strict", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min"))),
                ]);
                o.Bans["ip-generous"] = TimeSpan.FromMinutes(5);
                o.Bans["ip-strict"] = TimeSpan.FromMinutes(10);
            },
            a => a.MapGet("/", () => "hi"));
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
        using (var over = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Equal("ip-strict", JsonDocument.Parse(await over.Content.ReadAsStringAsync()).RootElement.GetProperty("rule").GetString());
        }

        using var banned = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Equal("600", string.Join(",", banned.Headers.GetValues("Retry-After")));
        var body = JsonDocument.Parse(await banned.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("ip-strict", body.GetProperty("rule").GetString());
        Assert.Equal("This client went over the edge rule 'ip-strict' and is banned; retry after 600 seconds.", body.GetProperty("detail").GetString());
    }

    private static DefaultHttpContext NewContext()
    {
        var context = new DefaultHttpContext();
        context.Response.Body = new MemoryStream();
        return context;
    }

    /// <summary>The body as one JSON object: parsing fails on anything written after it.</summary>
    private static JsonElement Body(HttpContext context)
    {
        var bytes = ((MemoryStream)context.Response.Body).ToArray();
        Assert.Equal(bytes.Length, context.Response.ContentLength);
        return JsonDocument.Parse(Encoding.UTF8.GetString(bytes)).RootElement;
    }
}
