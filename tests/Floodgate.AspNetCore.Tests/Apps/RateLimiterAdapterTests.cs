using System.Net;
using Floodgate.Limits;
using Floodgate.RateLimiting;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>ASP.NET Core's own rate limiting middleware over Floodgate's store, wired by AddFloodgateRateLimiter.</summary>
public sealed class RateLimiterAdapterTests
{
    [Fact]
    public async Task The_built_in_middleware_limits_on_the_registered_store_and_answers_429_with_Retry_After()
    {
        var store = new MemoryStore();
        var builder = AppHost.CreateBuilder();
        builder.Services.AddSingleton<IRateLimitStore>(store);
        builder.Services.AddFloodgateRateLimiter(
            context => context.Request.Path.StartsWithSegments("/free") ? FloodgatePartition.NoLimit : new FloodgatePartition(context.Request.Headers["X-Client"].ToString(), Limit.Gcra(Rate.Parse("2/min"))),
            options => options.AddConcurrencyLimiter("uploads", l => l.PermitLimit = 1));
        var app = builder.Build();
        app.UseRateLimiter();
        app.MapGet("/orders", () => "orders");
        app.MapGet("/free", () => "free");
        await using var host = await AppHost.StartAsync(app);

        void Client(HttpRequestMessage r) => r.Headers.Add("X-Client", "one");
        Assert.Equal(200, await host.StatusAsync("/orders", setup: Client));
        Assert.Equal(200, await host.StatusAsync("/orders", setup: Client));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
        Client(request);
        using var rejected = await host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.TooManyRequests, rejected.StatusCode);
        Assert.Equal("30", rejected.Headers.GetValues("Retry-After").Single());
        Assert.Equal(200, await host.StatusAsync("/orders", setup: r => r.Headers.Add("X-Client", "two")));
        Assert.Equal(200, await host.StatusAsync("/free", setup: Client));

        // The limiter decided on the registered store: its key is there.
        Assert.Equal(2, store.Count);
    }
}
