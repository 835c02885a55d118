using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Floodgate.Gateway.Tests.Deploy;

/// <summary>
/// A real Prometheus on a free loopback port for one test: the shipped alert rules, one scrape job on the given
/// targets every second and rules evaluated every second, its data in a temporary directory; stopped and removed on
/// dispose.
/// </summary>
internal sealed class PrometheusServer : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly ChildProcess _child;

    private PrometheusServer(ChildProcess child, Uri address)
    {
        _child = child;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = Bound };
    }

    public Uri Address { get; }

    public HttpClient Client { get; }

    /// <summary>Starts Prometheus scraping <paramref name="targets"/> (host:port, path /metrics) as job "floodgate".</summary>
    public static async Task<PrometheusServer> StartAsync(params Uri[] targets)
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-prometheus-test-").FullName;
        var config = Path.Combine(directory, "prometheus.yml");
        var quoted = string.Join(", ", targets.Select(t => $"'{t.Authority}'"));
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files:
              - '{Tools.Deploy("prometheus", "floodgate-alerts.yaml")}'
            scrape_configs:
              - job_name: floodgate
                static_configs:
                  - targets: [{quoted}]
            """);
        var address = new Uri($"http://127.0.0.1:{RedisServer.FreePort(cluster: false)}");
        var info = new ProcessStartInfo(Tools.Find("prometheus"));
        foreach (var arg in (string[])[$"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory, "data")}", $"--web.listen-address={address.Authority}", "--log.level=warn"])
        {
            info.ArgumentList.Add(arg);
        }

        var server = new PrometheusServer(ChildProcess.Start(info, directory, "prometheus"), address);
        try
        {
            await server.UntilAsync(async () => (await server.Client.GetAsync(new Uri("/-/ready", UriKind.Relative))).IsSuccessStatusCode, "Prometheus is ready");
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Runs an instant query; the API's <c>data</c> (result type and result), or throws with Prometheus's error.</summary>
    public async Task<JsonElement> QueryAsync(string promql)
    {
        using var response = await Client.PostAsync(new Uri("/api/v1/query", UriKind.Relative), new FormUrlEncodedContent([new("query", promql)]));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = body.RootElement;
        if (root.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"Prometheus refused '{promql}': {root.GetProperty("errorType").GetString()}: {root.GetProperty("error").GetString()}");
        }

        return root.GetProperty("data").Clone();
    }

    /// <summary>The alerts Prometheus holds (pending or firing), each as its labels and state.</summary>
    public async Task<IReadOnlyList<(Dictionary<string, string> Labels, string State)>> AlertsAsync()
    {
        var alerts = await Client.GetFromJsonAsync<JsonElement>(new Uri("/api/v1/alerts", UriKind.Relative));
        return [.. alerts.GetProperty("data").GetProperty("alerts").EnumerateArray().Select(a => (
            a.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? string.Empty),
            a.GetProperty("state").GetString() ?? string.Empty))];
    }

    /// <summary>Waits, polling, until <paramref name="condition"/> holds; fails naming <paramref name="what"/> and Prometheus's log after the bound.</summary>
    public async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? bound = null)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(_child.Process.HasExited, $"prometheus exited: {Log}");
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            Assert.True(deadline.Elapsed < (bound ?? Bound), $"timed out waiting until {what}; prometheus said: {Log}");
            await Task.Delay(250);
        }
    }

    public string Log => _child.Output;

    public void Dispose()
    {
        Client.Dispose();
        _child.Dispose();
    }
}
