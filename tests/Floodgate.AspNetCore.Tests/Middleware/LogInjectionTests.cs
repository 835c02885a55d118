using System.Net.Http.Headers;
using Floodgate.AspNetCore.Identity;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// The middleware in an application on real Kestrel: a rejection logs the path and the subject escaped and cut to 256
/// characters, as the console shows them, and as their structured values.
/// </summary>
public sealed class LogInjectionTests : IAsyncLifetime
{
    private const string EngineCategory = "Floodgate.Engine.RateLimitEngine";
    private const string ResolverCategory = "Floodgate.AspNetCore.Identity.JwtIdentityResolver";

    private TestIdentityProvider _idp = null!;

    public async Task InitializeAsync() => _idp = await TestIdentityProvider.StartAsync();

    public async Task DisposeAsync() => await _idp.DisposeAsync();

    [Fact]
    public async Task A_path_with_a_carriage_return_and_an_escape_sequence_is_logged_escaped()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var app = await StartAsync(new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min"))), logs);

        // A carriage return and an erase-line sequence, then a forged line: on a terminal, the real line would be erased.
        var statuses = await StatusesAsync(app, "/a%0D%1B%5B2K12:00:00%20info:%20all%20good");
        Assert.Equal([200, 429], statuses);

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.False(line.HasControl(), line.Shown);
        Assert.Contains(@": GET /a\r\x1B[2K12:00:00 info: all good, retry after ", line.Text, StringComparison.Ordinal);
        Assert.Equal(@"/a\r\x1B[2K12:00:00 info: all good", line.Value("Path"));
        Assert.Contains("{Method} {Path}", line.Value("{OriginalFormat}"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_long_path_is_logged_cut_to_256_characters()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var app = await StartAsync(new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min"))), logs);

        var statuses = await StatusesAsync(app, "/" + new string('p', 4000));
        Assert.Equal([200, 429], statuses);

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.Equal("/" + new string('p', 255) + "…(+3745 chars)", line.Value("Path"));
    }

    [Fact]
    public async Task A_subject_with_a_carriage_return_and_an_escape_sequence_is_logged_escaped()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var app = await StartAsync(new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min"))), logs, jwt: true);
        var token = _idp.CreateToken(subject: "alice\r\u001B[2Kforged", now: app.Time.GetUtcNow());

        var statuses = await StatusesAsync(app, "/orders/1", token);
        Assert.Equal([200, 429], statuses);

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.False(line.HasControl(), line.Shown);
        Assert.Contains(@"Rejected by user rule per-user for alice\r\x1B[2Kforged: GET /orders/1, retry after ", line.Text, StringComparison.Ordinal);
        Assert.Equal(@"alice\r\x1B[2Kforged", line.Value("Identity"));
    }

    [Fact]
    public async Task A_10_KB_subject_is_logged_cut_to_256_characters()
    {
        using var logs = new ConsoleLines(LogLevel.Information);
        await using var app = await StartAsync(new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min"))), logs, jwt: true);
        var token = _idp.CreateToken(subject: new string('s', 10_000), now: app.Time.GetUtcNow());

        var statuses = await StatusesAsync(app, "/orders/1", token);
        Assert.Equal([200, 429], statuses);

        var line = Assert.Single(logs.Of(EngineCategory));
        Assert.Equal(new string('s', 256) + "…(+9744 chars)", line.Value("Identity"));
        Assert.True(line.Text.Length < 500, $"{line.Text.Length} characters");
    }

    [Fact]
    public async Task A_rejected_token_logs_none_of_its_text()
    {
        // The identity resolver logs why a token is rejected as a fixed word, never the token or its claims.
        using var logs = new ConsoleLines(LogLevel.Debug);
        await using var app = await StartAsync(new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min"))), logs, jwt: true, level: LogLevel.Debug);
        var now = app.Time.GetUtcNow();
        var expired = _idp.CreateToken(subject: "alice\r\u001B[2Kforged", now: now - TimeSpan.FromHours(2), lifetime: TimeSpan.FromHours(1));

        var statuses = await StatusesAsync(app, "/orders/1", expired);
        Assert.Equal([401, 401], statuses);

        var lines = logs.Of(ResolverCategory);
        Assert.Equal(2, lines.Count);
        Assert.All(lines, l => Assert.EndsWith("Bearer token rejected: expired (0 earlier rejections not logged)." + Environment.NewLine, l.Text, StringComparison.Ordinal));
    }

    private Task<TestApp> StartAsync(RateLimitRule rule, ConsoleLines logs, bool jwt = false, LogLevel level = LogLevel.Information) => TestApp.StartAsync(
        o => o.Policy = new RateLimitPolicy([rule]),
        app => app.MapGet("/{**path}", () => "ok"),
        services: s =>
        {
            s.AddSingleton<ILoggerProvider>(logs);
            s.Configure<LoggerFilterOptions>(o => o.MinLevel = level);
            if (jwt)
            {
                s.AddFloodgateJwtIdentity(o =>
                {
                    o.Authority = _idp.Authority;
                    o.RequireHttpsMetadata = false;
                    o.Audiences.Add(TestIdentityProvider.DefaultAudience);
                });
            }
        });

    private static async Task<int[]> StatusesAsync(TestApp app, string path, string? token = null)
    {
        var statuses = new int[2];
        for (var i = 0; i < statuses.Length; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (token is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            using var response = await app.Client.SendAsync(request);
            statuses[i] = (int)response.StatusCode;
        }

        return statuses;
    }
}
