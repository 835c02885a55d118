using System.Net;
using System.Text.Json;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// Seconds in headers are whole and rounded up, so a client that waits what it is told is never early. The other
/// middleware tests decide on a frozen clock, where every retry-after is a whole number of seconds and rounding down
/// would pass them; here the clock moves by fractions of a second between the requests.
/// </summary>
public sealed class RetryAfterRoundingTests
{
    [Theory]
    [InlineData(1, 30, 60)] // a microsecond in: 29.999999 s to wait, 59.999999 s to the reset
    [InlineData(10_500_000, 20, 50)] // 19.5 s and 49.5 s
    [InlineData(29_000_001, 1, 31)] // 0.999999 s and 30.999999 s
    public async Task A_fractional_retry_after_and_reset_are_rounded_up(long advanceMicroseconds, long retryAfter, long reset)
    {
        // 2/min: two requests at once, then the next fits 30 s after the first and the bucket is full again after 60 s.
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy([new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("2/min")))]);
                o.Headers.Legacy = true;
            },
            a => a.MapGet("/", () => "hi"));
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);

        app.Time.Advance(TimeSpan.FromMicroseconds(advanceMicroseconds));
        using var denied = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, denied.StatusCode);
        Assert.Equal(retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture), Header(denied, "Retry-After"));
        Assert.Equal($"\"per-user\";r=0;t={reset}", Header(denied, RateLimitResponses.StateHeader));
        Assert.Equal(reset.ToString(System.Globalization.CultureInfo.InvariantCulture), Header(denied, "X-RateLimit-Reset"));

        using var body = JsonDocument.Parse(await denied.Content.ReadAsStringAsync());
        Assert.Equal(retryAfter, body.RootElement.GetProperty("retryAfter").GetInt64());
        Assert.EndsWith($"retry after {retryAfter} second{(retryAfter == 1 ? string.Empty : "s")}.", body.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // The wait it was told is enough, to the microsecond.
        app.Time.Advance(TimeSpan.FromSeconds(retryAfter));
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10_500_000)]
    [InlineData(29_000_001)]
    public async Task The_epoch_reset_is_the_unix_second_at_or_just_after_the_reset(long advanceMicroseconds)
    {
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy([new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("2/min")))]);
                o.Headers.Legacy = true;
                o.Headers.LegacyReset = RateLimitResetFormat.UnixSeconds;
            },
            a => a.MapGet("/", () => "hi"));

        // The bucket of 2/min is full again 60 s after the first two requests, whenever it is asked.
        var full = app.Time.GetUtcNow() + TimeSpan.FromSeconds(60);
        using (var first = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            AssertEpochJustAfter(full - TimeSpan.FromSeconds(30), Header(first, "X-RateLimit-Reset"));
        }

        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
        app.Time.Advance(TimeSpan.FromMicroseconds(advanceMicroseconds));
        using var denied = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, denied.StatusCode);
        AssertEpochJustAfter(full, Header(denied, "X-RateLimit-Reset"));

        // The IETF field stays a delta: only the legacy header changes form.
        Assert.Matches("^\"per-user\";r=0;t=[0-9]{1,2}$", Header(denied, RateLimitResponses.StateHeader));
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(0, 1, 1)] // one tick after the epoch's second
    [InlineData(TimeSpan.TicksPerSecond / 2, TimeSpan.TicksPerSecond / 2, 1)]
    [InlineData(TimeSpan.TicksPerSecond / 2, (TimeSpan.TicksPerSecond / 2) + 1, 2)]
    [InlineData(1, -TimeSpan.TicksPerSecond, 1)] // a reset already past is now, rounded up
    public void Ceiling_unix_seconds_rounds_the_reset_instant_up(long nowTicks, long afterTicks, long seconds)
    {
        var epoch = DateTimeOffset.FromUnixTimeSeconds(1_796_551_200);
        Assert.Equal(1_796_551_200 + seconds, RateLimitResponses.CeilingUnixSeconds(epoch.AddTicks(nowTicks), TimeSpan.FromTicks(afterTicks)));
    }

    [Fact]
    public async Task A_ban_s_retry_after_is_rounded_up()
    {
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy([new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min")))]);
                o.Bans["ip-flood"] = TimeSpan.FromMinutes(10);
            },
            a => a.MapGet("/", () => "hi"));
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
        using (var over = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Contains("is over its limit", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // 0.25 s into a ban of 10 minutes: 599.75 s left, which is told as 600.
        app.Time.Advance(TimeSpan.FromMilliseconds(250));
        using var banned = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Contains("is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("600", Header(banned, "Retry-After"));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)] // one tick
    [InlineData(TimeSpan.TicksPerSecond - 1, 1)]
    [InlineData(TimeSpan.TicksPerSecond, 1)]
    [InlineData(TimeSpan.TicksPerSecond + 1, 2)]
    [InlineData(-TimeSpan.TicksPerSecond, 0)]
    [InlineData(-2 * TimeSpan.TicksPerSecond, 0)] // (ticks + 1 s - 1 tick) / 1 s would be -1
    [InlineData((59 * TimeSpan.TicksPerSecond) + (TimeSpan.TicksPerSecond / 2), 60)]
    public void Ceiling_seconds_rounds_up_and_never_below_zero(long ticks, long seconds) =>
        Assert.Equal(seconds, RateLimitResponses.CeilingSeconds(TimeSpan.FromTicks(ticks)));

    /// <summary>The header is the first whole Unix second at or after <paramref name="reset"/>: a client waiting for it is never early.</summary>
    private static void AssertEpochJustAfter(DateTimeOffset reset, string header)
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(long.Parse(header, System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(at - reset, TimeSpan.Zero, TimeSpan.FromSeconds(1) - TimeSpan.FromTicks(1));
    }

    private static string Header(HttpResponseMessage response, string name) => string.Join(",", response.Headers.GetValues(name));
}
