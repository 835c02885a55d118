using System.Net;
using Floodgate.AspNetCore.Endpoints;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Constraints;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>Rules attached to an app's endpoints with <c>WithFloodgateRule</c>: which requests they see, and when.</summary>
public sealed class EndpointRuleTests
{
    [Fact]
    public async Task An_endpoint_rule_does_not_limit_a_sibling_endpoint_whose_route_matches_the_same_path()
    {
        await using var app = await TestApp.StartAsync(_ => { }, e =>
        {
            e.MapGet("/orders/{id}", (string id) => "order " + id).WithFloodgateRule("orders", "1/min");
            e.MapGet("/orders/export", () => "export");
        });

        using (var order = await Get(app, "/orders/1"))
        {
            Assert.Equal(HttpStatusCode.OK, order.StatusCode);
            Assert.Equal("\"orders\";r=0;t=60", string.Join(",", order.Headers.GetValues("RateLimit")));
        }

        for (var i = 0; i < 3; i++)
        {
            using var export = await Get(app, "/orders/export");
            Assert.Equal(HttpStatusCode.OK, export.StatusCode);
            Assert.Equal("export", await export.Content.ReadAsStringAsync());
            Assert.False(export.Headers.Contains("RateLimit"));
        }

        using var again = await Get(app, "/orders/2");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, again.StatusCode);
    }

    [Fact]
    public async Task An_endpoint_rule_does_not_limit_the_same_route_on_another_host()
    {
        await using var app = await TestApp.StartAsync(_ => { }, e =>
        {
            e.MapGet("/x", () => "a").RequireHost("a.test").WithFloodgateRule("a-only", "1/min");
            e.MapGet("/x", () => "b").RequireHost("b.test");
        });

        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/x", "a.test")).StatusCode);
        for (var i = 0; i < 3; i++)
        {
            using var b = await Get(app, "/x", "b.test");
            Assert.Equal(HttpStatusCode.OK, b.StatusCode);
            Assert.Equal("b", await b.Content.ReadAsStringAsync());
            Assert.False(b.Headers.Contains("RateLimit"));
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/x", "a.test")).StatusCode);
    }

    [Fact]
    public async Task A_rule_renamed_after_a_template_a_header_cannot_carry_is_percent_encoded_and_still_limits()
    {
        await using var app = await TestApp.StartAsync(
            _ => { },
            e =>
            {
                var group = e.MapGroup("/api").WithFloodgateRule("api", "1/min");
                group.MapGet("/a", () => "a");
                group.MapGet("/items/{id:regex(^\\d+$)}", (string id) => id);
                group.MapGet("/caf\u00e9", () => "café");
            },
            services: s => s.Configure<RouteOptions>(o => o.SetParameterPolicy<RegexInlineRouteConstraint>("regex")));

        using (var a = await Get(app, "/api/a"))
        {
            Assert.Equal(HttpStatusCode.OK, a.StatusCode);
            Assert.Equal("\"api\";r=0;t=60", string.Join(",", a.Headers.GetValues("RateLimit")));
        }

        using (var item = await Get(app, "/api/items/7"))
        {
            Assert.Equal(HttpStatusCode.OK, item.StatusCode);
            Assert.Equal("\"api:GET /api/items/{id:regex(^%5Cd+$)}\";r=0;t=60", string.Join(",", item.Headers.GetValues("RateLimit")));
        }

        using (var cafe = await Get(app, "/api/caf%C3%A9"))
        {
            Assert.Equal(HttpStatusCode.OK, cafe.StatusCode);
            Assert.Equal("\"api:GET /api/caf%C3%A9\";r=0;t=60", string.Join(",", cafe.Headers.GetValues("RateLimit")));
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/api/items/8")).StatusCode);
    }

    [Fact]
    public async Task An_endpoint_added_after_the_first_request_has_its_rule_applied()
    {
        var late = new ChangingEndpoints();
        await using var app = await TestApp.StartAsync(_ => { }, e =>
        {
            e.MapGet("/a", () => "a").WithFloodgateRule("a", "100/min");
            ((IEndpointRouteBuilder)e).DataSources.Add(late);
        });
        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/a")).StatusCode);

        // Routing sees the new endpoint at once; so must its rule.
        late.Add(new RouteEndpointBuilder(context => context.Response.WriteAsync("late"), RoutePatternFactory.Parse("/late"), 0)
        {
            Metadata = { new FloodgateRuleMetadata("late", Limit.FixedWindow(Rate.Parse("1/min"))) },
        }.Build());

        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/late")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/late")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/a")).StatusCode);
    }

    [Fact]
    public async Task Rules_of_one_name_on_the_same_route_of_two_hosts_each_limit_their_own_host()
    {
        await using var app = await TestApp.StartAsync(_ => { }, e =>
        {
            e.MapGet("/x", () => "a").RequireHost("a.test").WithFloodgateRule("per-host", "1/min");
            e.MapGet("/x", () => "b").RequireHost("b.test").WithFloodgateRule("per-host", "1/min");
        });

        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/x", "a.test")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/x", "b.test")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/x", "a.test")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/x", "b.test")).StatusCode);
    }

    [Theory]
    [InlineData("/items/{id:min(1)}", "/items/1", "/items/2")]
    [InlineData("/items/{id:int:min(1)}", "/items/1", "/items/2")]
    [InlineData("/codes/{code:regex(^[a-z]{{2}}$)}", "/codes/ab", "/codes/cd")]
    [InlineData("/files/{name}.txt", "/files/a.txt", "/files/b.txt")]
    [InlineData("/v{version}/x", "/v1/x", "/v2/x")]
    [InlineData("/caf\u00e9/{id}", "/caf\u00e9/1", "/caf\u00e9/2")]
    [InlineData("/{**rest}", "/anything", "/else/where")]
    [InlineData("/a/{b?}", "/a", "/a/b")]
    public async Task Endpoint_rules_apply_to_routes_of_every_form_routing_accepts(string template, string first, string second)
    {
        await using var app = await TestApp.StartAsync(
            _ => { },
            e =>
            {
                e.MapGet(template, () => "ok").WithFloodgateRule("capacity", "1/min");
                e.MapGet("/health", () => "ok").WithFloodgateRule("health", "1/min");
            },
            services: s => s.Configure<RouteOptions>(o => o.SetParameterPolicy<RegexInlineRouteConstraint>("regex"))); // not in the slim builder

        using (var response = await Get(app, first))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("\"capacity\";q=1;w=60", string.Join(",", response.Headers.GetValues("RateLimit-Policy")));
        }

        // The default key is the route: every path of the template shares one budget.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, second)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/health")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/health")).StatusCode);
    }

    [Fact]
    public async Task A_group_s_rule_is_one_rule_per_endpoint_of_the_group()
    {
        await using var app = await TestApp.StartAsync(_ => { }, e =>
        {
            var api = e.MapGroup("/api").WithFloodgateRule("api", "1/min");
            api.MapGet("/a", () => "a");
            api.MapGet("/b", () => "b");
            e.MapGet("/api/c", () => "c");
        });

        using (var a = await Get(app, "/api/a"))
        {
            Assert.Equal("\"api\";q=1;w=60", string.Join(",", a.Headers.GetValues("RateLimit-Policy")));
        }

        using (var b = await Get(app, "/api/b"))
        {
            Assert.Equal(HttpStatusCode.OK, b.StatusCode);
            Assert.Equal("\"api:GET /api/b\";q=1;w=60", string.Join(",", b.Headers.GetValues("RateLimit-Policy")));
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/api/a")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Get(app, "/api/b")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Get(app, "/api/c")).StatusCode);
    }

    [Fact]
    public async Task Endpoint_rules_that_cannot_be_attached_fail_every_request_instead_of_being_dropped()
    {
        // An endpoint rule named like a policy rule is renamed after its endpoint, and the policy has that name too.
        await using var app = await TestApp.StartAsync(
            o => o.Policy = new RateLimitPolicy(
            [
                new RateLimitRule("orders", RateLimitTier.Global, Limit.Gcra(Rate.Parse("100/min"))),
                new RateLimitRule("orders:GET /orders/{id}", RateLimitTier.Global, Limit.Gcra(Rate.Parse("100/min"))),
            ]),
            e => e.MapGet("/orders/{id}", (string id) => id).WithFloodgateRule("orders", "1/min"));

        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/orders/1", UriKind.Relative));
            request.Headers.Host = "a.test";
            using var response = await app.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        }

        var runtime = app.App.Services.GetService(typeof(FloodgateRuntime)) as FloodgateRuntime;
        var error = Assert.Throws<InvalidOperationException>(() => runtime!.AttachEndpoints(app.App.Services.GetService(typeof(EndpointDataSource)) as EndpointDataSource));
        Assert.Contains("has the name of another rule", error.Message, StringComparison.Ordinal);
        Assert.Equal(["orders", "orders:GET /orders/{id}"], runtime!.Policy.Rules.Select(r => r.Name));
    }

    [Fact]
    public async Task Requests_that_arrive_while_the_endpoint_rules_are_attached_wait_for_them()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var engine = new RateLimitEngine(RateLimitPolicy.Empty, new MemoryStore(null, time), time);
        var runtime = new FloodgateRuntime(engine, Microsoft.Extensions.Options.Options.Create(new FloodgateOptions()));
        var endpoint = new RouteEndpoint(
            _ => Task.CompletedTask,
            RoutePatternFactory.Parse("/orders/{id}"),
            0,
            new EndpointMetadataCollection(new FloodgateRuleMetadata("orders", Limit.Gcra(Rate.Parse("1/min"))), new HttpMethodMetadata(["GET"])),
            "orders");
        using var source = new BlockingDataSource(endpoint);

        // The first request attaches the rules, and is held while it reads the endpoints.
        var first = Task.Factory.StartNew(() => runtime.AttachEndpoints(source), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(source.Entered.Wait(TimeSpan.FromSeconds(30)));

        // A second request meanwhile must not go on without the rules.
        var seen = -1;
        var second = new Thread(() =>
        {
            runtime.AttachEndpoints(source);
            seen = runtime.Policy.Rules.Count;
        });
        second.Start();
        SpinWait.SpinUntil(() => !second.IsAlive || (second.ThreadState & ThreadState.WaitSleepJoin) != 0, TimeSpan.FromSeconds(30));
        source.Release.Set();
        await first;
        second.Join();
        Assert.Equal(1, seen);
        Assert.Equal(1, source.Reads);
    }

    /// <summary>Endpoints added while the app runs, as a dynamic data source (an in-app proxy's routes) adds them.</summary>
    private sealed class ChangingEndpoints : EndpointDataSource
    {
        private readonly Lock _lock = new();
        private List<Endpoint> _endpoints = [];
        private CancellationTokenSource _changed = new();

        public override IReadOnlyList<Endpoint> Endpoints => Volatile.Read(ref _endpoints);

        public override IChangeToken GetChangeToken()
        {
            lock (_lock)
            {
                return new CancellationChangeToken(_changed.Token);
            }
        }

        public void Add(Endpoint endpoint)
        {
            CancellationTokenSource previous;
            lock (_lock)
            {
                Volatile.Write(ref _endpoints, [.. _endpoints, endpoint]);
                previous = _changed;
                _changed = new CancellationTokenSource();
            }

            previous.Cancel();
            previous.Dispose();
        }
    }

    private static Task<HttpResponseMessage> Get(TestApp app, string path, string? host = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        if (host is not null)
        {
            request.Headers.Host = host;
        }

        return app.Client.SendAsync(request);
    }

    /// <summary>An endpoint source whose first read waits for <see cref="Release"/>.</summary>
    private sealed class BlockingDataSource(Endpoint endpoint) : EndpointDataSource, IDisposable
    {
        private int _reads;

        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public int Reads => Volatile.Read(ref _reads);

        public override IReadOnlyList<Endpoint> Endpoints
        {
            get
            {
                if (Interlocked.Increment(ref _reads) == 1)
                {
                    Entered.Set();
                    Release.Wait(TimeSpan.FromSeconds(30));
                }

                return [endpoint];
            }
        }

        public override IChangeToken GetChangeToken() => NullChangeToken.Singleton;

        public void Dispose()
        {
            Entered.Dispose();
            Release.Dispose();
        }
    }
}
