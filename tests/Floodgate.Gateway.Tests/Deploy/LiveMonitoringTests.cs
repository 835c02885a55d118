using System.Text.Json;
using System.Text.RegularExpressions;

namespace Floodgate.Gateway.Tests.Deploy;

/// <summary>
/// One real Prometheus (scraping every second, rules every second) on a real gateway process under bounded load, with
/// one short Redis outage, shared by the tests of the shipped alert rules and Grafana dashboard.
/// </summary>
public sealed class LiveMonitoringFixture : IAsyncLifetime
{
    private readonly CancellationTokenSource _load = new(TimeSpan.FromSeconds(90));
    private Task<(int Ok, int Limited)>? _traffic;

    internal MonitoredGateway Gateway { get; private set; } = null!;

    internal PrometheusServer Prometheus { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Gateway = await MonitoredGateway.StartAsync();
        Prometheus = await PrometheusServer.StartAsync(Gateway.Process.Admin);
        _traffic = Gateway.LoadAsync(_load.Token);

        // A short Redis outage once Prometheus has scraped the healthy gateway: the failure series (failures, decisions
        // answered by on_failure open) exist, as after any outage, and Redis is back for the rest.
        await Prometheus.UntilAsync(async () => (await Prometheus.QueryAsync("floodgate_decisions_total")).GetProperty("result").GetArrayLength() > 0, "the first scrape", TimeSpan.FromSeconds(45));
        Gateway.Redis.Kill();
        try
        {
            // Two scrapes of it at least, growing: rate() sees the outage.
            await Prometheus.UntilAsync(async () => (await Prometheus.QueryAsync("sum(rate(floodgate_redis_fallback_decisions_total[1m])) > 0")).GetProperty("result").GetArrayLength() > 0, "decisions answered by on_failure are scraped", TimeSpan.FromSeconds(30));
        }
        finally
        {
            Gateway.Redis.Restart();
        }
    }

    /// <summary>Stops the load: what it saw.</summary>
    internal async Task<(int Ok, int Limited)> StopLoadAsync()
    {
        await _load.CancelAsync();
        return await _traffic!;
    }

    public async Task DisposeAsync()
    {
        await _load.CancelAsync();
        if (_traffic is not null)
        {
            await _traffic;
        }

        Prometheus?.Dispose();
        if (Gateway is not null)
        {
            await Gateway.DisposeAsync();
        }

        _load.Dispose();
    }
}

/// <summary>The shipped alert rules and Grafana dashboard, on a real Prometheus scraping a real gateway.</summary>
public sealed partial class LiveMonitoringTests(LiveMonitoringFixture live) : IClassFixture<LiveMonitoringFixture>
{
    [Fact]
    public async Task The_shipped_alerts_are_raised_by_the_gateway_s_real_series()
    {
        var prometheus = live.Prometheus;

        // Rejections by the edge rule over 1/s, with no history: the spike rule matches the gateway's real series and
        // labels, and holds it pending (its for: is 2 minutes).
        await prometheus.UntilAsync(
            async () => (await prometheus.AlertsAsync()).Any(a => a.Labels["alertname"] == "FloodgateRejectionSpike" && a.Labels.GetValueOrDefault("rule") == "alerted" && a.Labels.GetValueOrDefault("tier") == "edge"),
            "FloodgateRejectionSpike is raised for the edge rule 'alerted'",
            TimeSpan.FromSeconds(45));

        // No reload was refused yet: the counter is exported at 0, and nothing fires.
        Assert.DoesNotContain(await prometheus.AlertsAsync(), a => a.Labels["alertname"] == "FloodgatePolicyReloadFailing");

        // A broken policy file, seen by the watcher and refused: the reload alert fires (it has no for:).
        await File.WriteAllTextAsync(live.Gateway.Process.PolicyPath, "upstream: http://127.0.0.1:1\nedge:\n  - name: alerted\n    limit: 5/mn\n");
        await prometheus.UntilAsync(
            async () => (await prometheus.AlertsAsync()).Any(a => a.Labels["alertname"] == "FloodgatePolicyReloadFailing" && a.State == "firing"),
            "FloodgatePolicyReloadFailing fires",
            TimeSpan.FromSeconds(30));

        // The outage's decisions answered by on_failure open raise the failure mode alert (pending: its for: is 1 minute).
        await prometheus.UntilAsync(
            async () => (await prometheus.AlertsAsync()).Any(a => a.Labels["alertname"] == "FloodgateFailureModeInForce" && a.Labels.GetValueOrDefault("mode") == "open"),
            "FloodgateFailureModeInForce is raised for mode open",
            TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Every_query_of_the_Grafana_dashboard_parses_and_returns_series()
    {
        var prometheus = live.Prometheus;
        using var dashboard = JsonDocument.Parse(await File.ReadAllTextAsync(Tools.Deploy("grafana", "floodgate-dashboard.json")));
        var queries = Queries(dashboard.RootElement).ToList();
        Assert.True(queries.Count >= 15, $"{queries.Count} queries");

        // Prometheus has scraped the load's rejections, shadow rejections and 401s: every series the dashboard reads exists.
        await prometheus.UntilAsync(
            async () => (await prometheus.QueryAsync("sum(floodgate_decisions_total{outcome=\"shadow_rejected\"}) and sum(floodgate_identity_rejections_total) and sum(floodgate_store_duration_seconds_count)")).GetProperty("result").GetArrayLength() > 0,
            "the load's series are scraped",
            TimeSpan.FromSeconds(45));

        // Rates need two samples in their window: wait until the dashboard's own first query answers.
        await prometheus.UntilAsync(async () => (await prometheus.QueryAsync(AsPromQl(queries[0]))).GetProperty("result").GetArrayLength() > 0, "a rate has two samples", TimeSpan.FromSeconds(30));
        foreach (var query in queries)
        {
            var data = await prometheus.QueryAsync(AsPromQl(query));
            Assert.True(data.GetProperty("result").GetArrayLength() > 0, $"no series for: {query}");
        }

        // The replica variable lists the gateway's instance.
        var instances = await prometheus.Client.GetStringAsync(new Uri("/api/v1/label/instance/values?match[]=floodgate_decisions_total", UriKind.Relative));
        Assert.Contains(live.Gateway.Process.Admin.Authority, instances, StringComparison.Ordinal);
        Assert.Contains("label_values(floodgate_decisions_total, instance)", dashboard.RootElement.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_dashboard_reads_only_metrics_the_gateway_exports()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Tools.Deploy("grafana", "floodgate-dashboard.json")));
        foreach (var query in Queries(dashboard.RootElement))
        {
            foreach (Match metric in MetricName().Matches(query))
            {
                Assert.StartsWith("floodgate_", metric.Value, StringComparison.Ordinal);
            }
        }

        Assert.All(dashboard.RootElement.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row"), panel =>
            Assert.Equal("${datasource}", panel.GetProperty("datasource").GetProperty("uid").GetString()));
    }

    /// <summary>Every target's expression, in every panel.</summary>
    private static IEnumerable<string> Queries(JsonElement dashboard) =>
        dashboard.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.TryGetProperty("targets", out var targets) ? targets.EnumerateArray() : Enumerable.Empty<JsonElement>())
            .Select(t => t.GetProperty("expr").GetString()!);

    /// <summary>Grafana's variables as a query run by hand resolves them: every replica, a one-minute rate window.</summary>
    private static string AsPromQl(string query) => query
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$instance", ".*", StringComparison.Ordinal);

    [GeneratedRegex(@"\b[a-z_]+_(total|bucket|count|sum)\b")]
    private static partial Regex MetricName();
}
