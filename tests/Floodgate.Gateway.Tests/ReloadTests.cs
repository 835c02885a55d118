using System.Net;

namespace Floodgate.Gateway.Tests;

public sealed class ReloadTests
{
    private const string Before = """
        upstream: {upstream}
        edge:
          - name: ip
            limit: 2/min
        """;

    [Fact]
    public async Task A_good_policy_change_is_applied_without_a_restart()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var version = (await gate.ReadinessAsync()).GetProperty("version").GetString();
        Assert.Equal("\"ip\";q=2;w=60", (await gate.GetAsync("/a")).Header("RateLimit-Policy"));

        await gate.WritePolicyAsync(Before.Replace("2/min", "7/min", StringComparison.Ordinal));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("version").GetString() != version);

        using var response = await gate.GetAsync("/a");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"ip\";q=7;w=60", response.Header("RateLimit-Policy"));
        Assert.Equal(1, (await gate.ReadinessAsync()).GetProperty("reloads").GetInt32());
    }

    [Fact]
    public async Task A_bad_policy_change_is_refused_and_the_last_good_policy_stays()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: true);
        var version = (await gate.ReadinessAsync()).GetProperty("version").GetString();

        await gate.WritePolicyAsync(Before.Replace("2/min", "2/fortnight", StringComparison.Ordinal));
        await WaitUntilAsync(async () => (await gate.ReadinessAsync()).GetProperty("last_reload_error").ValueKind == System.Text.Json.JsonValueKind.String);

        var readiness = await gate.ReadinessAsync();
        Assert.Equal("ready", readiness.GetProperty("status").GetString());
        Assert.Equal(version, readiness.GetProperty("version").GetString());
        var error = readiness.GetProperty("last_reload_error").GetString()!;
        Assert.Contains("policy.yaml:4:12: edge[0].limit:", error, StringComparison.Ordinal);
        Assert.Contains("fortnight", error, StringComparison.Ordinal);

        // The old limit is still in force.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a"));
    }

    [Fact]
    public async Task Routes_and_clusters_reload_too()
    {
        await using var gate = await TestGateway.StartAsync(Before, watch: false);
        await gate.WritePolicyAsync("""
            routes:
              - id: only-api
                path: "/api/{**rest}"
                destinations: ["{upstream}"]
            """);

        Assert.Empty(gate.Host.Reload());

        Assert.Equal(HttpStatusCode.NotFound, (await gate.GetAsync("/a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/api/a")).StatusCode);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 200; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail("The condition did not hold within 10 seconds.");
    }
}
