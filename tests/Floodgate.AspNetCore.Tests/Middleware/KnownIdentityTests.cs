using System.Net;
using System.Net.Http.Headers;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// The middleware with the JWT resolver on real Kestrel: a token already validated is decided edge through global at
/// once; an unknown or bad token still meets the edge first, before any signature check.
/// </summary>
public sealed class KnownIdentityTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private TestIdentityProvider _idp = null!;

    public async Task InitializeAsync() => _idp = await TestIdentityProvider.StartAsync();

    public async Task DisposeAsync() => await _idp.DisposeAsync();

    [Fact]
    public async Task A_cached_token_over_the_edge_rule_is_answered_by_the_edge_and_starts_its_ban()
    {
        await using var app = await StartAsync(Policy(edge: "3/min", user: "100/min"), ban: TimeSpan.FromSeconds(60));
        var alice = _idp.CreateToken(subject: "alice", now: _time.GetUtcNow());

        // The first request validates the token (edge first); the next ones find it cached.
        Expect([200, 200, 200], await StatusesAsync(app, 3, "/free", alice));
        using (var over = await SendAsync(app, "/free", alice))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Equal("\"ip-flood\";r=0;t=60", Header(over, "RateLimit"));
            Assert.Contains("\"tier\":\"edge\"", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(1, app.Resolver.SignatureChecks);

        // The ban holds after the edge bucket has refilled, for every caller from the IP.
        _time.Advance(TimeSpan.FromSeconds(45));
        using (var banned = await SendAsync(app, "/free", alice))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            Assert.Equal("15", Header(banned, "Retry-After"));
            Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var anonymous = await SendAsync(app, "/free", null))
        {
            Assert.Contains("banned", await anonymous.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        _time.Advance(TimeSpan.FromSeconds(16));
        Expect([200], await StatusesAsync(app, 1, "/free", alice));
        Assert.Equal(4, app.Hits);
    }

    [Fact]
    public async Task A_user_rejection_of_a_cached_token_still_charges_the_edge_and_bans_nobody()
    {
        await using var app = await StartAsync(Policy(edge: "5/min", user: "2/min"), ban: TimeSpan.FromSeconds(60));
        var alice = _idp.CreateToken(subject: "alice", now: _time.GetUtcNow());

        using (var first = await SendAsync(app, "/limited", alice))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal("\"per-user\";r=1;t=30", Header(first, "RateLimit"));
        }

        using (var second = await SendAsync(app, "/limited", alice))
        {
            Assert.Equal(HttpStatusCode.OK, second.StatusCode);
            Assert.Equal("\"per-user\";r=0;t=60", Header(second, "RateLimit"));
        }

        using (var third = await SendAsync(app, "/limited", alice))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
            Assert.Equal("\"per-user\";r=0;t=60", Header(third, "RateLimit"));
            Assert.Equal("30", Header(third, "Retry-After"));
            Assert.Contains("\"tier\":\"user\"", await third.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // /free has only the edge rule: the three requests charged it, the rejected one included, and the user
        // rejection started no ban.
        using (var free = await SendAsync(app, "/free", alice))
        {
            Assert.Equal(HttpStatusCode.OK, free.StatusCode);
            Assert.Equal("\"ip-flood\";r=1;t=48", Header(free, "RateLimit"));
        }

        Assert.Equal(1, app.Resolver.SignatureChecks);
        Assert.Equal(3, app.Hits);
    }

    [Fact]
    public async Task Bad_and_unknown_tokens_meet_the_edge_before_any_signature_check_and_earn_the_ban()
    {
        await using var app = await StartAsync(Policy(edge: "3/min", user: "100/min"), ban: TimeSpan.FromSeconds(60));
        var now = _time.GetUtcNow();
        var forged = _idp.Sign(new Microsoft.IdentityModel.Tokens.SigningCredentials(
            new Microsoft.IdentityModel.Tokens.RsaSecurityKey(TestIdentityProvider.PooledRsa(41)) { KeyId = TestIdentityProvider.RsaKeyId },
            Microsoft.IdentityModel.Tokens.SecurityAlgorithms.RsaSha256), now: now);

        // Each forged token costs a signature check and a 401, and is charged to the edge.
        Expect([401, 401, 401], await StatusesAsync(app, 3, "/free", forged));
        Assert.Equal(3, app.Resolver.SignatureChecks);

        // A valid token never seen before gets the edge first too: refused, and banned, without being checked.
        using (var over = await SendAsync(app, "/free", _idp.CreateToken(subject: "bob", now: now)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Contains("\"tier\":\"edge\"", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var banned = await SendAsync(app, "/free", forged))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            Assert.Contains("banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(3, app.Resolver.SignatureChecks);
        Assert.Equal(0, app.Hits);
    }

    [Fact]
    public async Task Anonymous_callers_refused_by_policy_still_meet_the_edge_first()
    {
        await using var app = await StartAsync(Policy(edge: "2/min", user: "100/min"), anonymous: AnonymousPolicy.Reject);

        Expect([401, 401, 429], await StatusesAsync(app, 3, "/free", null));
        Assert.Equal(0, app.Hits);
    }

    [Fact]
    public async Task Both_paths_give_the_same_answers()
    {
        // The same requests to two apps: one with the JWT resolver, one with a resolver that never answers from its
        // cache, so that every request there takes the edge-first path.
        var options = Policy(edge: "6/min", user: "2/min");
        await using var combined = await StartAsync(options, ban: TimeSpan.FromSeconds(60));
        await using var sequential = await StartAsync(options, ban: TimeSpan.FromSeconds(60), edgeFirst: true);
        var alice = _idp.CreateToken(subject: "alice", now: _time.GetUtcNow());
        (string Path, string? Token)[] requests =
        [
            ("/limited", alice), ("/limited", alice), ("/limited", alice), ("/free", alice), ("/free", null),
            ("/free", "not-a.jwt.token"), ("/free", alice), ("/free", alice),
        ];

        var answers = new List<string>[2];
        foreach (var (app, index) in new[] { (combined, 0), (sequential, 1) })
        {
            answers[index] = [];
            foreach (var (path, token) in requests)
            {
                using var response = await SendAsync(app, path, token);
                answers[index].Add(string.Join(
                    " | ",
                    (int)response.StatusCode,
                    Header(response, "RateLimit"),
                    Header(response, "RateLimit-Policy"),
                    Header(response, "Retry-After"),
                    response.Headers.WwwAuthenticate.ToString(),
                    await response.Content.ReadAsStringAsync()));
            }
        }

        Assert.Equal(answers[1], answers[0]);
        Assert.Equal(
            [200, 200, 429, 200, 200, 401, 429, 429],
            answers[0].Select(a => int.Parse(a[..3], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Contains("\"tier\":\"user\"", answers[0][2], StringComparison.Ordinal);
        Assert.StartsWith("200 | \"ip-flood\";r=2;t=40", answers[0][3], StringComparison.Ordinal);
        Assert.Contains("\"tier\":\"edge\",\"rule\":\"ip-flood\"", answers[0][6], StringComparison.Ordinal);
        Assert.Contains("banned", answers[0][7], StringComparison.Ordinal);
        Assert.Equal(1, combined.Resolver.SignatureChecks);
        Assert.Equal(1, sequential.Resolver.SignatureChecks);
    }

    [Fact]
    public async Task Edge_rules_that_read_the_identity_never_see_one()
    {
        // An application policy may key an edge rule on the subject; the edge still runs before identity, so such a
        // rule finds no subject and never applies, even for a token already validated.
        var options = new FloodgateOptions
        {
            Policy = new RateLimitPolicy(
            [
                new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("100/min"))),
                new RateLimitRule("edge-subject", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min"))) { Key = [KeyPart.Subject] },
            ]),
        };
        await using var app = await StartAsync(options);
        var alice = _idp.CreateToken(subject: "alice", now: _time.GetUtcNow());

        Expect([200, 200, 200], await StatusesAsync(app, 3, "/free", alice));
    }

    private static FloodgateOptions Policy(string edge, string user) => new()
    {
        Policy = new RateLimitPolicy(
        [
            new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse(edge))),
            new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse(user))) { Match = new RuleMatch { Paths = [new PathGlob("/limited")] } },
        ]),
    };

    private async Task<TestApp> StartAsync(FloodgateOptions options, TimeSpan? ban = null, AnonymousPolicy anonymous = AnonymousPolicy.Allow, bool edgeFirst = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddSingleton<TimeProvider>(_time);
        builder.Services.AddSingleton<IRateLimitStore>(new MemoryStore(null, _time));
        if (edgeFirst)
        {
            builder.Services.AddSingleton<IIdentityResolver>(sp => new NeverCached(sp.GetRequiredService<JwtIdentityResolver>()));
        }

        builder.Services.AddFloodgateJwtIdentity(o =>
        {
            o.Authority = _idp.Authority;
            o.RequireHttpsMetadata = false;
            o.Audiences.Add(TestIdentityProvider.DefaultAudience);
        });
        builder.Services.AddFloodgate(o =>
        {
            o.Policy = options.Policy;
            o.Anonymous = anonymous;
            if (ban is { } duration)
            {
                o.Bans["ip-flood"] = duration;
            }
        });
        var app = builder.Build();
        var result = new TestApp(app, app.Services.GetRequiredService<JwtIdentityResolver>());
        app.UseFloodgate();
        app.MapGet("/{**path}", () =>
        {
            Interlocked.Increment(ref result.HitCount);
            return "ok";
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        result.Client = new HttpClient { BaseAddress = new Uri(address) };
        return result;
    }

    private static async Task<HttpResponseMessage> SendAsync(TestApp app, string path, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await app.Client.SendAsync(request);
    }

    private static async Task<int[]> StatusesAsync(TestApp app, int count, string path, string? token)
    {
        var statuses = new int[count];
        for (var i = 0; i < count; i++)
        {
            using var response = await SendAsync(app, path, token);
            statuses[i] = (int)response.StatusCode;
        }

        return statuses;
    }

    private static void Expect(int[] expected, int[] actual) => Assert.Equal(expected, actual);

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;

    /// <summary>A resolver that keeps the default <see cref="IIdentityResolver.TryResolveCached"/>: it never answers.</summary>
    private sealed class NeverCached(IIdentityResolver inner) : IIdentityResolver
    {
        public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken) =>
            inner.ResolveAsync(context, cancellationToken);
    }

    private sealed class TestApp(WebApplication app, JwtIdentityResolver resolver) : IAsyncDisposable
    {
        public int HitCount;

        public JwtIdentityResolver Resolver { get; } = resolver;

        public HttpClient Client { get; set; } = null!;

        public int Hits => Volatile.Read(ref HitCount);

        public async ValueTask DisposeAsync()
        {
            Client?.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
