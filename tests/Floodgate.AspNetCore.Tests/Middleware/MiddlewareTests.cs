using System.Net;
using System.Security.Claims;
using Floodgate.AspNetCore.Endpoints;
using Floodgate.AspNetCore.Http;
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
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>The middleware inside an ASP.NET Core app on real Kestrel: the service tier attached to the app's own endpoints.</summary>
public sealed class MiddlewareTests
{
    [Fact]
    public async Task Endpoint_rules_limit_only_their_endpoint_and_share_the_route_template_budget()
    {
        await using var app = await StartAsync(_ => { }, endpoints =>
        {
            endpoints.MapGet("/orders/{id:int}", (int id) => $"order {id}").WithFloodgateRule("orders-capacity", "2/min");
            endpoints.MapGet("/health", () => "ok");
        });

        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync("/orders/1")).StatusCode);
        using var second = await app.Client.GetAsync("/orders/2");
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("\"orders-capacity\";q=2;w=60", string.Join(",", second.Headers.GetValues("RateLimit-Policy")));
        Assert.Equal("\"orders-capacity\";r=0;t=60", string.Join(",", second.Headers.GetValues("RateLimit")));

        using var third = await app.Client.GetAsync("/orders/3");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
        Assert.Equal("30", string.Join(",", third.Headers.GetValues("Retry-After")));
        Assert.Equal("application/problem+json", third.Content.Headers.ContentType?.MediaType);

        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync("/health")).StatusCode);
        Assert.False((await app.Client.GetAsync("/health")).Headers.Contains("RateLimit"));
    }

    [Fact]
    public async Task The_app_s_authenticated_user_is_the_subject_of_user_rules()
    {
        var policy = new RateLimitPolicy([new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min")))]);
        await using var app = await StartAsync(
            o => o.Policy = policy,
            endpoints => endpoints.MapGet("/me", () => "me"),
            AuthenticateFromHeader);

        Assert.Equal(HttpStatusCode.OK, (await Send(app.Client, "alice")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Send(app.Client, "alice")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Send(app.Client, "bob")).StatusCode);

        static Task<HttpResponseMessage> Send(HttpClient client, string user)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/me");
            request.Headers.Add("X-User", user);
            return client.SendAsync(request);
        }
    }

    [Theory]
    [InlineData("subject")]
    [InlineData("subject,method")] // a key of several parts
    public async Task Anonymous_callers_are_keyed_apart_from_every_validated_subject(string key)
    {
        var rule = new RateLimitRule("per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min"))) { Key = [.. key.Split(',').Select(KeyPart.Parse)] };
        await using var app = await StartAsync(
            o => o.Policy = new RateLimitPolicy([rule]),
            endpoints => endpoints.MapGet("/me", () => "me"),
            AuthenticateFromHeader);

        // The anonymous caller at 127.0.0.1 spends its budget...
        Assert.Equal(HttpStatusCode.OK, (await Send(app.Client, null)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Send(app.Client, null)).StatusCode);

        // ...which a user whose subject claim spells that caller's name does not share, nor the other way round.
        Assert.Equal(HttpStatusCode.OK, (await Send(app.Client, "ip:127.0.0.1")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Send(app.Client, "ip:127.0.0.1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Send(app.Client, "127.0.0.1")).StatusCode);

        static Task<HttpResponseMessage> Send(HttpClient client, string? user)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/me");
            if (user is not null)
            {
                request.Headers.Add("X-User", user);
            }

            return client.SendAsync(request);
        }
    }

    [Fact]
    public async Task Anonymous_requests_are_rejected_with_401_when_configured()
    {
        await using var app = await StartAsync(o => o.Anonymous = AnonymousPolicy.Reject, endpoints => endpoints.MapGet("/", () => "hi"));
        using var response = await app.Client.GetAsync("/");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
    }

    [Fact]
    public void Invalid_options_are_refused_with_the_field_named()
    {
        var options = new FloodgateOptions();
        options.Bans["nope"] = TimeSpan.FromSeconds(10);
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains("Bans", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Invalid_options_stop_the_host_at_start_with_the_reason(bool useMiddleware)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddFloodgate(o => o.Bans["nope"] = TimeSpan.FromSeconds(10));
        await using var app = builder.Build();
        if (useMiddleware)
        {
            app.UseFloodgate();
        }

        app.MapGet("/", () => "hi");
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("FloodgateOptions.Bans: 'nope' is not an edge rule of the policy", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_endpoint_rule_named_like_a_policy_rule_is_renamed_after_its_endpoint_and_reloads_still_apply()
    {
        var policy = new RateLimitPolicy([new RateLimitRule("orders", RateLimitTier.Global, Limit.Gcra(Rate.Parse("100/min")))]);
        await using var app = await StartAsync(
            o => o.Policy = policy,
            endpoints => endpoints.MapGet("/orders/{id}", (string id) => id).WithFloodgateRule("orders", "1/min"));

        using (var first = await app.Client.GetAsync("/orders/1"))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal("\"orders:GET /orders/{id}\";q=1;w=60", string.Join(",", first.Headers.GetValues("RateLimit-Policy")));
        }

        var runtime = app.App.Services.GetRequiredService<FloodgateRuntime>();
        Assert.Equal(["orders", "orders:GET /orders/{id}"], runtime.Policy.Rules.Select(r => r.Name).Order(StringComparer.Ordinal));

        var reloaded = new FloodgateOptions { Policy = policy };
        runtime.Apply(reloaded);
        Assert.Same(reloaded, runtime.Options);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await app.Client.GetAsync("/orders/2")).StatusCode);
    }

    [Fact]
    public async Task A_reload_in_the_middle_of_a_request_does_not_split_it_across_two_policies()
    {
        // The identity is looked up after the middleware read the settings in force and before the engine decides: a
        // reload landing there must not have the engine decide on the new policy while the bans come from the old one.
        static FloodgateOptions Options()
        {
            var options = new FloodgateOptions { Policy = new RateLimitPolicy([new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min")))]) };
            options.Bans["ip-flood"] = TimeSpan.FromHours(1);
            return options;
        }

        var resolver = new AnonymousResolver { ReloadOnCall = 2 };
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = Options().Policy;
                o.Bans["ip-flood"] = TimeSpan.FromHours(1);
            },
            a => a.MapGet("/", () => "hi"),
            services: s => s.AddSingleton<IIdentityResolver>(resolver));
        var runtime = app.App.Services.GetRequiredService<FloodgateRuntime>();
        resolver.OnCachedLookup = () => runtime.Apply(Options());

        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);

        // Over the edge rule while the reload lands: rejected, and the rule's ban starts.
        using (var over = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Contains("is over its limit", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var banned = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Contains("is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_ban_is_reported_as_the_ban_whose_probe_denied()
    {
        // Only the bans that apply to a request are probed, so the denying probe's place among the probes is not its ban's
        // place among the bans: on "/" ip-flood's probe is the first, on /admin/x the second.
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy(
                [
                    new RateLimitRule("admin-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min"))) { Match = new RuleMatch { Paths = [new PathGlob("/admin/**")] } },
                    new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min"))),
                ]);
                o.Bans["admin-flood"] = TimeSpan.FromHours(1);
                o.Bans["ip-flood"] = TimeSpan.FromHours(1);
            },
            a =>
            {
                a.MapGet("/", () => "hi");
                a.MapGet("/admin/x", () => "admin");
            });

        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(new Uri("/", UriKind.Relative))).StatusCode);
        using (var over = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Contains("is over its limit", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        app.Time.Advance(TimeSpan.FromMinutes(1));
        foreach (var path in new[] { "/", "/admin/x" })
        {
            using var banned = await app.Client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
            Assert.Contains("went over the edge rule 'ip-flood' and is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(ForwardedHeader.XForwardedFor, null)] // the proxy names no client
    [InlineData(ForwardedHeader.XForwardedFor, "unknown")]
    [InlineData(ForwardedHeader.Forwarded, "for=unknown")]
    [InlineData(ForwardedHeader.Forwarded, "for=_hidden")] // obfuscated
    public async Task A_trusted_proxy_s_own_address_is_limited_but_never_banned(ForwardedHeader header, string? value)
    {
        // The test client connects from 127.0.0.1, the trusted proxy; a request naming no client resolves to it.
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy([new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min")))]);
                o.Bans["ip-flood"] = TimeSpan.FromHours(1);
                o.TrustedProxies.Add("127.0.0.0/8");
                o.ForwardedHeader = header;
            },
            a => a.MapGet("/", () => "hi"));
        var name = header == ForwardedHeader.Forwarded ? "Forwarded" : "X-Forwarded-For";

        Assert.Equal(HttpStatusCode.OK, (await Send(value)).StatusCode);
        using (var over = await Send(value))
        {
            // The edge rule still limits the proxy's address...
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Contains("is over its limit", await over.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // ...but bans nobody: once the limit allows it again, so does the proxy, and so it does every client behind it.
        app.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await Send(value)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Send(header == ForwardedHeader.Forwarded ? "for=203.0.113.5" : "203.0.113.5")).StatusCode);

        async Task<HttpResponseMessage> Send(string? forwarded)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/", UriKind.Relative));
            if (forwarded is not null)
            {
                request.Headers.Add(name, forwarded);
            }

            return await app.Client.SendAsync(request);
        }
    }

    [Fact]
    public async Task A_client_behind_a_trusted_proxy_is_still_banned()
    {
        await using var app = await TestApp.StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy([new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1/min")))]);
                o.Bans["ip-flood"] = TimeSpan.FromHours(1);
                o.TrustedProxies.Add("127.0.0.0/8");
            },
            a => a.MapGet("/", () => "hi"));

        Assert.Equal(HttpStatusCode.OK, (await Send("203.0.113.5")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Send("203.0.113.5")).StatusCode);
        app.Time.Advance(TimeSpan.FromMinutes(1));
        using var banned = await Send("203.0.113.5");
        Assert.Equal(HttpStatusCode.TooManyRequests, banned.StatusCode);
        Assert.Contains("is banned", await banned.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await Send("203.0.113.6")).StatusCode);

        async Task<HttpResponseMessage> Send(string client)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/", UriKind.Relative));
            request.Headers.Add("X-Forwarded-For", client);
            return await app.Client.SendAsync(request);
        }
    }

    [Fact]
    public void Rule_names_that_cannot_go_in_a_header_are_refused()
    {
        var options = new FloodgateOptions
        {
            Policy = new RateLimitPolicy([new RateLimitRule("über-api", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min")))]),
        };
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.StartsWith("FloodgateOptions.Policy: 'über-api' is not a valid rule name", error.Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => new FloodgateRuleMetadata("quote\"d", Limit.Gcra(Rate.Parse("1/min"))));
        Assert.Throws<ArgumentException>(() => new FloodgateRuleMetadata("tab\there", Limit.Gcra(Rate.Parse("1/min"))));
        Assert.Equal("orders API v2", new FloodgateRuleMetadata("orders API v2", Limit.Gcra(Rate.Parse("1/min"))).Name);
    }

    [Fact]
    public async Task A_closed_failure_mode_answers_503_and_bans_no_one()
    {
        // The store cannot decide the edge rule (as Redis with on_failure: closed during an outage) but the ban's own
        // bucket still answers, as it would when Redis comes back between the two calls.
        var store = new OutageStore(new MemoryStore(null, new FakeTimeProvider(DateTimeOffset.UtcNow)), failingAmount: 5) { Down = true };
        await using var app = await StartAsync(
            o =>
            {
                o.Policy = new RateLimitPolicy([new RateLimitRule("ip-flood", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("5/min")))]);
                o.Bans["ip-flood"] = TimeSpan.FromMinutes(1);
            },
            a => a.MapGet("/", () => "hi"),
            store: store);

        using (var outage = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, outage.StatusCode);
            Assert.NotNull(outage.Headers.RetryAfter);
            Assert.Contains("cannot be reached", await outage.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Back up: the client was never over its limit, so it is not banned.
        store.Down = false;
        using var after = await app.Client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.True(store.Failures > 0);
    }

    private static Task<TestApp> StartAsync(Action<FloodgateOptions> configure, Action<WebApplication> map, Action<WebApplication>? before = null, IRateLimitStore? store = null) =>
        TestApp.StartAsync(configure, map, before, store);

    /// <summary>A store that, while down, answers checks of one limit amount as a closed failure mode would.</summary>
    private sealed class OutageStore(MemoryStore inner, long failingAmount) : DelegatingStore<MemoryStore>(inner)
    {
        private int _failures;

        public bool Down { get; set; }

        public int Failures => Volatile.Read(ref _failures);

        public override ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            if (!TryDecide(checks.Span, outcomes.Span))
            {
                throw new InvalidOperationException("The memory store always decides.");
            }

            return default;
        }

        // The engine's tiers fail too: one DecideAsync per stage, through the outage.
        public override ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            DecideStagesInTurnAsync(checks, stageEnds, outcomes, cancellationToken);

        public override bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
        {
            Inner.Decide(checks, outcomes);
            for (var i = 0; i < checks.Length; i++)
            {
                if (Down && checks[i].Limit.Amount == failingAmount)
                {
                    Interlocked.Increment(ref _failures);
                    outcomes[i] = new StoreOutcome(new Floodgate.Algorithms.LimitOutcome(false, 0, 0, 1_000_000), false, 0, IsStoreFailure: true);
                }
            }

            return true;
        }
    }

    /// <summary>Answers every request as anonymous, from the cache; runs <see cref="OnCachedLookup"/> first, once.</summary>
    private sealed class AnonymousResolver : IIdentityResolver
    {
        private int _calls;

        public int ReloadOnCall { get; set; } = -1;

        public Action? OnCachedLookup { get; set; }

        public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken) => new(IdentityResult.Anonymous);

        public bool TryResolveCached(HttpContext context, out IdentityResult identity)
        {
            if (Interlocked.Increment(ref _calls) == ReloadOnCall)
            {
                OnCachedLookup?.Invoke();
            }

            identity = IdentityResult.Anonymous;
            return true;
        }
    }

    /// <summary>Stands in for the app's own authentication: the X-User header names the user, as its <c>sub</c> claim.</summary>
    private static void AuthenticateFromHeader(IApplicationBuilder pipeline) => pipeline.Use((context, next) =>
    {
        var user = context.Request.Headers["X-User"].ToString();
        if (user.Length > 0)
        {
            context.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim("sub", user)], "test"));
        }

        return next(context);
    });
}
