using System.Net;
using Floodgate.Gateway.Policy;

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
    public async Task A_reload_the_gate_refuses_installs_no_new_identity_either()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: ip-flood
                limit: 10/min
            """);
        var version = gate.Host.Policy.Version;
        var next = PolicyLoader.Parse(TestGateway.Expand("""
            upstream: {upstream}
            {identity}
            user:
              - name: per-user
                limit: 5/min
            """, gate.Upstream, gate.Identity), "next.yaml");

        // A ban on a user rule gets past no loader; it stands for any policy the gate refuses after identity was built.
        var refused = new GatewayPolicy
        {
            Source = next.Source,
            Version = next.Version,
            Rules = next.Rules,
            Bans = new Dictionary<string, TimeSpan> { ["per-user"] = TimeSpan.FromSeconds(10) },
            TrustedProxies = next.TrustedProxies,
            Routes = next.Routes,
            Clusters = next.Clusters,
            Jwt = next.Jwt,
        };
        var errors = gate.Host.Runtime.Apply(refused, "next.yaml");
        Assert.StartsWith("next.yaml: (policy): FloodgateOptions.Bans: 'per-user' is not an edge rule of the policy; only edge rules can ban.", errors.Single().ToString(), StringComparison.Ordinal);
        Assert.Equal(version, gate.Host.Policy.Version);

        // The token is not looked at: no identity resolver was installed.
        using (var unchecked_ = await gate.GetAsync("/a", "this.is-not-a.jwt"))
        {
            Assert.Equal(HttpStatusCode.OK, unchecked_.StatusCode);
        }

        Assert.Empty(gate.Host.Runtime.Apply(next, "next.yaml"));
        using var checked_ = await gate.GetAsync("/a", "this.is-not-a.jwt");
        Assert.Equal(HttpStatusCode.Unauthorized, checked_.StatusCode);
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
