using System.Net;
using Floodgate.Gateway.Tests.Traffic;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests.Costs;

/// <summary>
/// A cost the upstream reports in a response trailer (written when the cost is known, after the body): a real Kestrel
/// upstream over HTTP/2 (h2c), through the gateway, to a client over HTTP/2 and over HTTP/1.1.
/// </summary>
public sealed class TrailerCostTests
{
    [Theory]
    [InlineData("2.0", "trailer-h2")]
    [InlineData("1.1", "trailer-h1")]
    public async Task A_cost_in_a_trailer_is_charged(string clientVersion, string rule)
    {
        await using var upstream = await StartUpstreamAsync();
        using var meter = new CostMeter();
        var http2 = clientVersion == "2.0";
        await using var gateway = await TrafficGateway.StartAsync(
            $"""
            routes:
              - path: /{"{**rest}"}
                destinations: [{upstream.Urls.First()}]
                http_version: h2c
            edge:
              - name: {rule}
                key: [client_ip]
                limit: 100000/d
                cost:
                  unit: credits
                  charge: header
                  header: x-usage-cost
                  reserve: 500
                  fallback: 40
            """,
            http2 ? HttpProtocols.Http2 : null);
        using var client = gateway.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/work?units=123")
        {
            Version = http2 ? HttpVersion.Version20 : HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using (var response = await client.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("{\"done\":true}", await response.Content.ReadAsStringAsync());
            if (http2)
            {
                // The trailer reaches an HTTP/2 client as the upstream sent it.
                Assert.Equal("123", response.TrailingHeaders.GetValues("x-usage-cost").Single());
            }
        }

        Assert.True(await CostMeter.UntilAsync(() => meter.Sum("charged", rule) == 123), $"charged {meter.Sum("charged", rule)} (HTTP/{clientVersion} client)");
        Assert.Equal(500 - 123, meter.Sum("refunded", rule));
    }

    /// <summary>An h2c upstream whose answer carries its cost in a trailer, after the body.</summary>
    private static async Task<WebApplication> StartUpstreamAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        var app = builder.Build();
        app.MapGet("/work", async (HttpContext context) =>
        {
            context.Response.ContentType = "application/json";
            context.Response.DeclareTrailer("x-usage-cost");
            await context.Response.WriteAsync("{\"done\":true}");
            context.Response.AppendTrailer("x-usage-cost", context.Request.Query["units"].ToString());
        });
        await app.StartAsync();
        return app;
    }
}
