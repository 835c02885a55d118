using System.Net;
using System.Text.RegularExpressions;
using Floodgate.Costs;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Costs;

/// <summary>
/// An endpoint that writes its cost in a response trailer, after its body, on real Kestrel: over HTTP/2 the trailer is
/// sent and read; over HTTP/1.1, which cannot send it, it is still read for the settlement.
/// </summary>
public sealed partial class TrailerCostTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_cost_written_in_a_trailer_is_settled(bool http2)
    {
        var rule = new RateLimitRule("trailer", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("1000/d")))
        {
            Key = [KeyPart.Parse("client_ip")],
            Costs = new RuleCost { Unit = "credits", Measure = CostMeasure.Reported, Header = "x-usage-cost", Reserve = CostEstimate.Constant(500), Fallback = 40 },
        };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = http2 ? HttpProtocols.Http2 : HttpProtocols.Http1));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton<IRateLimitStore>(new MemoryStore(null, time));
        builder.Services.AddFloodgate(o => o.Policy = new RateLimitPolicy([rule]));
        await using var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/work", async (HttpContext context) =>
        {
            context.Response.DeclareTrailer("x-usage-cost");
            await context.Response.WriteAsync("done");
            Assert.True(context.Response.SupportsTrailers());
            context.Response.AppendTrailer("x-usage-cost", "123");
        });
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };

        using (var first = await SendAsync(client, http2))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal(500, Remaining(first));
            Assert.Equal("done", await first.Content.ReadAsStringAsync());
            if (http2)
            {
                Assert.Equal("123", first.TrailingHeaders.GetValues("x-usage-cost").Single());
            }
            else
            {
                Assert.Empty(first.TrailingHeaders);
            }
        }

        // Reserved 500, charged 123 from the trailer (not the fallback of 40): 377 left once the next reserves 500.
        using var second = await SendAsync(client, http2);
        Assert.Equal(1000 - 123 - 500, Remaining(second));
        await second.Content.ReadAsStringAsync();
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, bool http2) =>
        client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/work")
        {
            Version = http2 ? HttpVersion.Version20 : HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        });

    private static long Remaining(HttpResponseMessage response) =>
        long.Parse(RemainingPattern().Match(response.Headers.GetValues("RateLimit").Single()).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [GeneratedRegex(";r=(\\d+)")]
    private static partial Regex RemainingPattern();
}
