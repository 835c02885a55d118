using System.Net;
using System.Text.Json;
using Floodgate.AspNetCore.Features;
using Floodgate.AspNetCore.Rejections;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>A minimal API app using Floodgate's public API only: named policies, exemptions, rejections, the decision in the handler.</summary>
public sealed class MinimalApiTests
{
    [Fact]
    public async Task Endpoints_that_require_one_policy_share_its_one_budget()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgate(o => o.AddPolicy("orders", "3/min"));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders/{id}", (string id) => id).RequireFloodgate("orders");
        app.MapPost("/orders", () => "created").RequireFloodgate("orders");
        app.MapGet("/catalog", () => "catalog");
        await using var host = await AppHost.StartAsync(app);

        Assert.Equal(200, await host.StatusAsync("/orders/1"));
        Assert.Equal(200, await host.StatusAsync("/orders", "POST"));
        Assert.Equal(200, await host.StatusAsync("/orders/2"));

        // The fourth on either endpoint is over the one budget: a service-tier policy answers 503.
        Assert.Equal(503, await host.StatusAsync("/orders", "POST"));
        Assert.Equal(503, await host.StatusAsync("/orders/3"));
        Assert.Equal(200, await host.StatusAsync("/catalog"));
        using var response = await host.Client.GetAsync("/orders/4");
        Assert.Equal("\"orders\";q=3;w=60", response.Headers.GetValues("RateLimit-Policy").Single());
    }

    [Fact]
    public async Task A_group_requires_a_policy_for_each_of_its_endpoints_and_a_user_policy_keys_each_user_apart()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgate(o => o.AddPolicy("per-client", Limit.Gcra(Rate.Parse("2/min")), RateLimitTier.User, [KeyPart.Parse("header:X-Client")]));
        var app = builder.Build();
        app.UseFloodgate();
        var api = app.MapGroup("/api").RequireFloodgate("per-client");
        api.MapGet("/a", () => "a");
        api.MapGet("/b", () => "b");
        await using var host = await AppHost.StartAsync(app);

        void Client(HttpRequestMessage r, string name) => r.Headers.Add("X-Client", name);
        Assert.Equal(200, await host.StatusAsync("/api/a", setup: r => Client(r, "one")));
        Assert.Equal(200, await host.StatusAsync("/api/b", setup: r => Client(r, "one")));
        Assert.Equal(429, await host.StatusAsync("/api/a", setup: r => Client(r, "one")));
        Assert.Equal(200, await host.StatusAsync("/api/b", setup: r => Client(r, "two")));
    }

    [Fact]
    public async Task DisableFloodgate_exempts_an_endpoint_from_every_rule()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgate(o =>
        {
            o.Policy = new RateLimitPolicy([new RateLimitRule("ceiling", RateLimitTier.Global, Limit.Gcra(Rate.Parse("1/min")))]);
            o.AddPolicy("orders", "1/min");
        });
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders", () => "orders");
        app.MapGet("/healthz", () => "ok").RequireFloodgate("orders").DisableFloodgate();
        await using var host = await AppHost.StartAsync(app);

        Assert.Equal(200, await host.StatusAsync("/orders"));
        Assert.Equal(503, await host.StatusAsync("/orders"));
        for (var i = 0; i < 5; i++)
        {
            using var health = await host.Client.GetAsync("/healthz");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.False(health.Headers.Contains("RateLimit"));
        }
    }

    [Fact]
    public async Task OnRejected_gets_the_decision_after_the_status_code_and_Retry_After_are_set()
    {
        var seen = new List<FloodgateRejectedContext>();
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgate(o =>
        {
            o.AddPolicy("search", Limit.Gcra(Rate.Parse("2/min")), RateLimitTier.Service);
            o.RejectionStatusCodes[RateLimitTier.Service] = 429;
            o.OnRejected = async (rejected, cancellationToken) =>
            {
                seen.Add(rejected);
                rejected.HttpContext.Response.ContentType = "text/plain";
                await rejected.HttpContext.Response.WriteAsync($"{rejected.Tier} {rejected.Rule} {rejected.RetryAfter?.TotalSeconds} {rejected.Remaining} {rejected.HttpContext.Response.StatusCode}", cancellationToken);
            };
        });
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/search", () => "results").RequireFloodgate("search");
        await using var host = await AppHost.StartAsync(app);

        Assert.Equal(200, await host.StatusAsync("/search"));
        Assert.Equal(200, await host.StatusAsync("/search"));
        using var rejected = await host.Client.GetAsync("/search");
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        Assert.Equal("30", rejected.Headers.GetValues("Retry-After").Single());
        Assert.Equal("Service search 30 0 429", await rejected.Content.ReadAsStringAsync());
        var context = Assert.Single(seen);
        Assert.Equal("search", context.Decision.Rule!.Name);
        Assert.False(context.IsBan);
        Assert.Contains("retry after 30 seconds", context.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejections_are_written_by_the_app_s_problem_details_service_when_it_has_one()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = c => c.ProblemDetails.Extensions["traceId"] = "app-trace");
        builder.Services.AddFloodgate(o => o.AddPolicy("orders", "1/min", RateLimitTier.User));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders", () => "orders").RequireFloodgate("orders");
        await using var host = await AppHost.StartAsync(app);

        Assert.Equal(200, await host.StatusAsync("/orders"));
        using var rejected = await host.Client.GetAsync("/orders");
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        Assert.Equal("application/problem+json", rejected.Content.Headers.ContentType!.MediaType);
        using var body = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync());
        Assert.Equal("app-trace", body.RootElement.GetProperty("traceId").GetString());
        Assert.Equal("orders", body.RootElement.GetProperty("rule").GetString());
        Assert.Equal("user", body.RootElement.GetProperty("tier").GetString());
        Assert.Equal(60, body.RootElement.GetProperty("retryAfter").GetInt64());
        Assert.Equal(429, body.RootElement.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task A_handler_reads_the_decision_that_admitted_its_request()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgate(o => o.AddPolicy("orders", "5/min"));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders", (HttpContext context) =>
        {
            var decision = context.Features.GetRequiredFeature<IFloodgateFeature>().Decision;
            return $"{decision.Rule?.Name} {decision.Remaining}/{decision.Quota}";
        }).RequireFloodgate("orders");
        await using var host = await AppHost.StartAsync(app);

        Assert.Equal("orders 4/5", await host.Client.GetStringAsync("/orders"));
        Assert.Equal("orders 3/5", await host.Client.GetStringAsync("/orders"));
    }

    [Fact]
    public async Task An_endpoint_that_requires_an_unknown_policy_stops_the_start_naming_both()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgate(o => o.AddPolicy("orders", "5/min"));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders", () => "orders").RequireFloodgate("order");
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => AppHost.StartAsync(app));
        Assert.Contains("requires the Floodgate policy 'order', which is not registered", error.Message, StringComparison.Ordinal);
        Assert.Contains("the policies are: orders", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_policies_cannot_share_a_name()
    {
        var options = new FloodgateOptions().AddPolicy("orders", "5/min");
        var error = Assert.Throws<ArgumentException>(() => options.AddPolicy("ORDERS", "1/s"));
        Assert.Contains("already registered", error.Message, StringComparison.Ordinal);
    }
}
