using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>Two instances of one app on one real redis-server: a named policy is one budget across both, exactly.</summary>
public sealed class TwoInstancesTests : IDisposable
{
    private readonly RedisServer _redis = RedisServer.Start();

    public void Dispose() => _redis.Dispose();

    [Fact]
    public async Task Two_instances_on_one_redis_server_share_each_policy_s_budget_exactly()
    {
        await using var first = await StartAsync();
        await using var second = await StartAsync();

        // Until its store connects, an instance answers by the failure mode (open: unlimited); the test starts after.
        using var connected = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await first.App.Services.GetRequiredService<RedisStore>().WaitConnectedAsync(connected.Token);
        await second.App.Services.GetRequiredService<RedisStore>().WaitConnectedAsync(connected.Token);
        var admitted = new Dictionary<string, int> { ["orders"] = 0, ["per-user"] = 0 };
        for (var i = 0; i < 24; i++)
        {
            var host = i % 2 == 0 ? first : second;
            var path = i % 3 == 0 ? "/profile" : "/orders/" + i;
            if (await host.StatusAsync(path, setup: r => r.Headers.Add("X-User", "alice")) == 200)
            {
                admitted[path == "/profile" ? "per-user" : "orders"]++;
            }
        }

        Assert.Equal(5, admitted["orders"]);
        Assert.Equal(3, admitted["per-user"]);
    }

    private async Task<AppHost> StartAsync()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddFloodgateRedisStore(o =>
        {
            o.Configuration = _redis.Configuration;

            // Exact means every decision is Redis's: a call late on this loaded test machine (the first loads the
            // script) is refused, not let through by the default open failure mode.
            o.FailureMode = StoreFailureMode.Closed;
            o.Timeout = TimeSpan.FromSeconds(2);
        });
        builder.Services.AddFloodgate(o =>
        {
            o.AddPolicy("orders", "5/min");
            o.AddPolicy("per-user", Limit.SlidingWindow(Rate.Parse("3/h")), RateLimitTier.User, [KeyPart.Parse("header:X-User")]);
        });
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders/{id}", (string id) => id).RequireFloodgate("orders");
        app.MapGet("/profile", () => "alice").RequireFloodgate("per-user");
        return await AppHost.StartAsync(app);
    }
}
