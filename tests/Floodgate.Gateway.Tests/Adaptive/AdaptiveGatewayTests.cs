using System.Net;
using System.Text.Json;

namespace Floodgate.Gateway.Tests.Adaptive;

public sealed class AdaptiveGatewayTests
{
    [Fact]
    public async Task The_gateway_learns_an_adaptive_limit_and_shows_it_on_the_dashboard_and_in_the_metrics()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync($"""
            upstream: {"{upstream}"}
            service:
              - name: adaptive-search
                match: {"{ path: /search/** }"}
                adaptive: {"{ mode: enforce, min_limit: 2, initial_limit: 30, min_rtt_samples: 5, sample_window: 100ms }"}
            {token.Section}
            """);
        using var admin = token.Client(gateway.Host.AdminAddress!);

        // Five requests one at a time, at the pinned limit: they measure the baseline (on the gateway's fake clock).
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await gateway.GetAsync("/search/a")).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await gateway.GetAsync("/other")).StatusCode);
        using var response = await admin.GetAsync("/admin/v1/dashboard");
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var adaptive = Assert.Single(body.GetProperty("adaptive").EnumerateArray());
        Assert.Equal("adaptive-search", adaptive.GetProperty("rule").GetString());
        Assert.Equal("enforce", adaptive.GetProperty("mode").GetString());
        Assert.Equal("gradient", adaptive.GetProperty("algorithm").GetString());
        Assert.False(adaptive.GetProperty("measuringMinRtt").GetBoolean());
        Assert.Equal(30, adaptive.GetProperty("limit").GetInt32());
        Assert.Equal(30, adaptive.GetProperty("effectiveLimit").GetInt32());
        Assert.Equal(0, adaptive.GetProperty("inFlight").GetInt32());
        Assert.Equal(0, adaptive.GetProperty("rejected").GetInt64());
        Assert.NotEqual(JsonValueKind.Null, adaptive.GetProperty("minRttMilliseconds").ValueKind);

        var metrics = await gateway.Admin.GetStringAsync("/metrics");
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("floodgate_adaptive_limit", StringComparison.Ordinal) && l.Contains("rule=\"adaptive-search\"", StringComparison.Ordinal) && l.TrimEnd().EndsWith(" 30", StringComparison.Ordinal));
    }
}
