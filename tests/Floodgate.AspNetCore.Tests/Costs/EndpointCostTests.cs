using System.Net;
using System.Text.RegularExpressions;
using Floodgate.AspNetCore.Costs;
using Floodgate.Costs;
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
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Costs;

/// <summary>An endpoint that reports its own cost, on real Kestrel: the same reserve-then-settle as a reported usage.</summary>
public sealed partial class EndpointCostTests
{
    [Fact]
    public async Task An_endpoint_reports_its_cost_from_code_and_is_settled_against_its_reservation()
    {
        var rule = new RateLimitRule("reports", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1000/d")))
        {
            Key = [KeyPart.Parse("header:x-session")],
            Costs = new RuleCost { Unit = "credits", Measure = CostMeasure.Reported, Reserve = CostEstimate.FromHeader("x-estimate", otherwise: 50), Fallback = 5 },
        };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton<IRateLimitStore>(new MemoryStore(null, time));
        builder.Services.AddFloodgate(o => o.Policy = new RateLimitPolicy([rule]));
        await using var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/work", (HttpContext context) =>
        {
            var units = long.Parse(context.Request.Query["units"]!, System.Globalization.CultureInfo.InvariantCulture);
            return context.ReportCost(units) ? Results.Ok("reported") : Results.Ok("nothing to report to");
        });
        app.MapGet("/silent", () => Results.Ok("no report"));
        app.MapGet("/fails", (HttpContext context) =>
        {
            context.ReportCost(7);
            throw new InvalidOperationException("the work failed after spending 7");
        });
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };

        // Reserves 200, reports 30: 170 come back. The policy names the unit.
        using (var first = await SendAsync(client, "/work?units=30", estimate: 200))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(800, Remaining(first));
            Assert.Contains("qu=\"credits\"", first.Headers.GetValues("RateLimit-Policy").Single(), StringComparison.Ordinal);
            Assert.Equal("\"reported\"", await first.Content.ReadAsStringAsync());
        }

        using (var second = await SendAsync(client, "/silent", estimate: 100))
        {
            // 1000 - 30 charged - 100 reserved.
            Assert.Equal(870, Remaining(second));
        }

        // The silent one was charged its fallback (5); the failed one what it reported (7).
        using (var failed = await SendAsync(client, "/fails", estimate: 100))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }

        using var last = await SendAsync(client, "/silent", estimate: 0);
        Assert.Equal(1000 - 30 - 5 - 7, Remaining(last));

        // Without a reservation there is nothing to report to.
        Assert.False(new DefaultHttpContext().ReportCost(1));
        await app.StopAsync();
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string path, long estimate)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("x-session", "run-1");
        request.Headers.Add("x-estimate", estimate.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return client.SendAsync(request);
    }

    private static long Remaining(HttpResponseMessage response) =>
        long.Parse(RemainingPattern().Match(response.Headers.GetValues("RateLimit").Single()).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [GeneratedRegex(";r=(\\d+)")]
    private static partial Regex RemainingPattern();
}
