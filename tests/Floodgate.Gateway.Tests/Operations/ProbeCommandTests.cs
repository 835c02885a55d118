using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests;

/// <summary><c>floodgate probe</c>, the container image's health check: 0 for a 200 from a real admin port, 1 otherwise.</summary>
public sealed class ProbeCommandTests
{
    [Fact]
    public async Task Probe_exits_zero_on_healthz_and_one_on_a_non_200_or_a_closed_port()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            """);
        var admin = gate.Host.AdminAddress!.ToString().TrimEnd('/');
        Assert.Equal(0, await ProbeAsync($"{admin}/healthz"));
        Assert.Equal(1, await ProbeAsync($"{admin}/no-such-endpoint"));
        Assert.Equal(1, await ProbeAsync($"http://127.0.0.1:{RedisServer.FreePort(cluster: false)}/healthz"));
        Assert.Equal(1, await ProbeAsync("ftp://127.0.0.1/healthz"));
    }

    private static async Task<int> ProbeAsync(string url)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        return await GatewayCli.Build(output, error).Parse(["probe", url, "--timeout", "00:00:05"]).InvokeAsync();
    }
}
