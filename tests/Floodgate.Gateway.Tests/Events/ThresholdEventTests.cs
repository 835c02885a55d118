using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

/// <summary>Threshold events: raised once per period across replicas, logged, listed, and POSTed signed; a hanging receiver slows no request.</summary>
public sealed class ThresholdEventTests
{
    private const string Secret = "whsec-0123456789abcdef0123456789";

    [Fact]
    public async Task Thresholds_fire_exactly_once_per_period_across_two_replicas_and_each_webhook_signature_verifies()
    {
        using var redis = RedisServer.Start();
        using var token = new AdminTokens();
        await using var receiver = await WebhookReceiver.StartAsync();
        var secretFile = Path.Combine(Path.GetDirectoryName(token.File)!, "webhook-secret");
        await File.WriteAllTextAsync(secretFile, Secret + "\n");
        var policy = $$"""
            upstream: {upstream}
            {identity}
            store: { kind: redis, configuration: "{{redis.Configuration}}", on_failure: closed, timeout: 2s }
            default_plan: free
            plans:
              free: { daily: 10/d }
            user:
              - name: daily
                limit: plan.daily
                algorithm: fixed_window
                thresholds: [80%, 100%]
            events:
              webhooks:
                - { url: "{{receiver.Url}}", secret_file: {{secretFile}} }
              retry_delay: 50ms
            {{token.Section}}
            """;
        await using var a = await TestGateway.StartAsync(policy);
        await using var b = await TestGateway.StartAsync(policy);
        var tokenA = a.Identity.CreateToken(subject: "alice");
        var tokenB = b.Identity.CreateToken(subject: "alice");

        // 12 requests, alternating replicas: the 8th crosses 80 %, the 10th 100 %, the last two are refused.
        var statuses = new List<int>();
        for (var i = 0; i < 6; i++)
        {
            statuses.AddRange(await a.StatusesAsync(1, "/x", tokenA));
            statuses.AddRange(await b.StatusesAsync(1, "/x", tokenB));
        }

        Assert.Equal(10, statuses.Count(s => s == 200));
        Assert.True(await Eventually.HoldsAsync(() => Task.FromResult(receiver.Received.Count >= 2), TimeSpan.FromSeconds(5)));

        // The key reset mid-period crosses both thresholds again: the store's dedup raises neither a second time.
        using var admin = token.Client(a.Host.AdminAddress!);
        using (var reset = await admin.DeleteAsync("/admin/v1/rules/daily/state?subject=alice&plan=free"))
        {
            Assert.Equal(HttpStatusCode.NoContent, reset.StatusCode);
        }

        Assert.Equal(10, (await a.StatusesAsync(10, "/x", tokenA)).Count(s => s == 200));
        await Task.Delay(500);
        Assert.Equal(2, receiver.Received.Count);

        var thresholds = new List<int>();
        foreach (var (headers, body) in receiver.Received)
        {
            var timestamp = long.Parse(headers["Floodgate-Timestamp"].ToString(), CultureInfo.InvariantCulture);
            var expected = "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes($"{timestamp}.{body}")));
            Assert.Equal(expected, headers["Floodgate-Signature"].ToString());
            Assert.InRange(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - timestamp, -5, 60);
            var json = JsonDocument.Parse(body).RootElement;
            Assert.Equal(headers["Floodgate-Event-Id"].ToString(), json.GetProperty("id").GetString());
            Assert.Equal("alice", json.GetProperty("subject").GetString());
            Assert.Equal("daily", json.GetProperty("rule").GetString());
            Assert.Equal("free", json.GetProperty("plan").GetString());
            Assert.Equal(10, json.GetProperty("limit").GetInt64());
            Assert.Equal(TimeSpan.FromDays(1), json.GetProperty("period").GetProperty("end").GetDateTimeOffset() - json.GetProperty("period").GetProperty("start").GetDateTimeOffset());
            var threshold = json.GetProperty("threshold").GetInt32();
            Assert.Equal(threshold == 80 ? 8 : 10, json.GetProperty("used").GetInt64());
            thresholds.Add(threshold);
        }

        Assert.Equal([80, 100], thresholds.Order());

        // Either replica lists both, the latest first.
        using var adminB = token.Client(b.Host.AdminAddress!);
        var listed = JsonDocument.Parse(await adminB.GetStringAsync("/admin/v1/events")).RootElement.GetProperty("events");
        Assert.Equal([100, 80], listed.EnumerateArray().Select(e => e.GetProperty("threshold").GetInt32()));
    }

    [Fact]
    public async Task A_hanging_receiver_does_not_slow_requests_and_its_queue_stays_bounded()
    {
        await using var receiver = await WebhookReceiver.StartAsync(hang: true);
        var secretFile = Path.Combine(Directory.CreateTempSubdirectory("floodgate-webhook-").FullName, "secret");
        await File.WriteAllTextAsync(secretFile, Secret);
        const string Rules = """
            upstream: {upstream}
            {identity}
            user:
              - name: per-user
                limit: 1/d
                algorithm: fixed_window
                thresholds: [100%]
            """;
        await using var hanging = await TestGateway.StartAsync(Rules + $$"""

            events:
              webhooks:
                - { url: "{{receiver.Url}}", secret_file: {{secretFile}} }
              queue: 4
              retries: 0
              timeout: 1m
            """);
        await using var quiet = await TestGateway.StartAsync(Rules);

        // Every request is a new subject's first, crossing 100 %: one event each.
        const int Requests = 150;
        var withHook = await LatenciesAsync(hanging, Requests, "h");
        var without = await LatenciesAsync(quiet, Requests, "q");
        Console.WriteLine($"ThresholdEventTests: request latency with a hanging webhook p50 {Percentile(withHook, 50):0.000} ms p99 {Percentile(withHook, 99):0.000} ms; without webhooks p50 {Percentile(without, 50):0.000} ms p99 {Percentile(without, 99):0.000} ms ({Requests} requests each)");

        var events = hanging.Host.Runtime.Events!;
        Assert.True(await Eventually.HoldsAsync(() => Task.FromResult(receiver.Arrived == 1 && events.Queued <= 8 && events.DroppedCount >= Requests - 9), TimeSpan.FromSeconds(5)), $"arrived {receiver.Arrived}, queued {events.Queued}, dropped {events.DroppedCount}");
        Assert.InRange(events.Queued, 0, 8);
        Assert.Equal(Requests, hanging.Upstream.Hits);
    }

    private static async Task<double[]> LatenciesAsync(TestGateway gateway, int count, string prefix)
    {
        var tokens = Enumerable.Range(0, count).Select(i => gateway.Identity.CreateToken(subject: $"{prefix}-{i}")).ToArray();
        var latencies = new double[count];
        for (var i = 0; i < count; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await gateway.GetAsync("/x", tokens[i]);
            latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        return latencies;
    }

    private static double Percentile(double[] values, int percent)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, sorted.Length * percent / 100)];
    }
}
