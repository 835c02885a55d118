using Floodgate.AspNetCore.Policies;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>An MVC controller app using Floodgate's attributes: a controller's policy, an action's, and an exempt action.</summary>
public sealed class MvcTests
{
    [Fact]
    public async Task A_controller_s_policy_is_one_budget_for_its_actions_and_DisableFloodgate_exempts_one()
    {
        await using var host = await StartAsync();
        Assert.Equal(200, await host.StatusAsync("/mvc/orders/1"));
        Assert.Equal(200, await host.StatusAsync("/mvc/orders", "POST"));
        Assert.Equal(503, await host.StatusAsync("/mvc/orders/2"));
        Assert.Equal(503, await host.StatusAsync("/mvc/orders", "POST"));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(200, await host.StatusAsync("/mvc/orders/health"));
        }
    }

    [Fact]
    public async Task An_action_s_policy_applies_to_that_action_only()
    {
        await using var host = await StartAsync();
        Assert.Equal(200, await host.StatusAsync("/mvc/reports"));
        Assert.Equal(429, await host.StatusAsync("/mvc/reports"));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(200, await host.StatusAsync("/mvc/reports/summary"));
        }
    }

    private static async Task<AppHost> StartAsync()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddControllers().AddApplicationPart(typeof(OrdersController).Assembly);
        builder.Services.AddFloodgate(o =>
        {
            o.AddPolicy("orders", "2/min");
            o.AddPolicy("reports", "1/min", Rules.RateLimitTier.User);
        });
        var app = builder.Build();
        app.UseFloodgate();
        app.MapControllers();
        return await AppHost.StartAsync(app);
    }
}

/// <summary>Every action shares the controller's policy, but the health check.</summary>
[ApiController]
[Route("mvc/orders")]
[EnableFloodgate("orders")]
public sealed class OrdersController : ControllerBase
{
    [HttpGet("{id:int}")]
    public string Get(int id) => $"order {id}";

    [HttpPost]
    public string Create() => "created";

    [HttpGet("health")]
    [DisableFloodgate]
    public string Health() => "ok";
}

/// <summary>One action with a policy, one without.</summary>
[ApiController]
[Route("mvc/reports")]
public sealed class ReportsController : ControllerBase
{
    [HttpGet]
    [EnableFloodgate("reports")]
    public string Export() => "export";

    [HttpGet("summary")]
    public string Summary() => "summary";
}
