using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// The gateway's traces: a rejection's log line carries the trace id of its rate-limit step, and with an OTLP endpoint
/// the steps are exported to it (a real OTLP/HTTP receiver on loopback reads what the exporter sends).
/// </summary>
public sealed class TracingTests
{
    [Fact]
    public async Task A_rejection_is_logged_with_the_trace_id_of_its_step()
    {
        var steps = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == FloodgateMiddleware.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = steps.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        using var logs = new FakeLoggerProvider();
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: traced-edge
                limit: 1/min
            """, logs: logs, logLevel: LogLevel.Information);

        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/a")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await gate.GetAsync("/a")).StatusCode);

        var rejected = Assert.Single(steps, a => (string?)a.GetTagItem("floodgate.rule") == "traced-edge" && (string?)a.GetTagItem("floodgate.outcome") == "rejected");
        var line = Assert.Single(logs.Collector.GetSnapshot(), r => r.Message.Contains("Rejected by edge rule traced-edge", StringComparison.Ordinal));
        var scope = line.Scopes.OfType<IEnumerable<KeyValuePair<string, object?>>>().SelectMany(s => s).ToList();
        Assert.Contains(scope, p => p.Key == "TraceId" && p.Value?.ToString() == rejected.TraceId.ToHexString());
        Assert.Contains(scope, p => p.Key == "SpanId" && p.Value?.ToString() == rejected.SpanId.ToHexString());
    }

    [Fact]
    public async Task With_an_otlp_endpoint_each_step_is_exported_as_a_span()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var upstream = await Demo.EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var directory = Directory.CreateTempSubdirectory("floodgate-otlp-test-").FullName;
        try
        {
            var policy = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(policy, $"""
                upstream: {upstream.Address.ToString().TrimEnd('/')}
                user:
                  - name: exported-rule
                    limit: 1/min
                """);
            var host = await GatewayHost.StartAsync(new GatewayHostOptions
            {
                PolicyPath = policy,
                Listen = new Uri("http://127.0.0.1:0"),
                Admin = null,
                WatchPolicy = false,
                LogLevel = LogLevel.Warning,
                OtlpEndpoint = receiver.Address,
                OtlpProtocol = OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf,
            });
            await using (host)
            {
                using var client = new HttpClient { BaseAddress = host.ProxyAddress };
                Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri("/x", UriKind.Relative))).StatusCode);
                Assert.Equal(HttpStatusCode.TooManyRequests, (await client.GetAsync(new Uri("/x", UriKind.Relative))).StatusCode);
            }

            // Stopping the host flushed its exporter: the spans (protobuf, where names and strings are plain UTF-8).
            var sent = receiver.Received;
            Assert.Contains("/v1/traces", receiver.Paths);
            Assert.Contains("floodgate.rate_limit", sent, StringComparison.Ordinal);
            Assert.Contains("exported-rule", sent, StringComparison.Ordinal);
            Assert.Contains("rejected", sent, StringComparison.Ordinal);
            Assert.Contains(Tracing.ServiceName, sent, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>An OTLP/HTTP endpoint that keeps the bodies it is sent (as Latin-1 text, to search for strings).</summary>
    private sealed class OtlpReceiver : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentQueue<(string Path, byte[] Body)> _received = new();

        private OtlpReceiver(WebApplication app) => _app = app;

        public Uri Address => new(_app.Urls.First());

        public string Received => string.Concat(_received.Select(r => Encoding.Latin1.GetString(r.Body)));

        public IReadOnlyList<string> Paths => [.. _received.Select(r => r.Path)];

        public static async Task<OtlpReceiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var receiver = new OtlpReceiver(app);
            app.MapPost("/{**path}", async (HttpContext context) =>
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body);
                receiver._received.Enqueue((context.Request.Path.Value ?? string.Empty, body.ToArray()));
                context.Response.ContentType = "application/x-protobuf";
            });
            await app.StartAsync();
            return receiver;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
