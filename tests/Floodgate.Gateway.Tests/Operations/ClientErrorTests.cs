using System.Net;
using System.Net.Sockets;
using System.Text;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Operations;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Forwarder;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// Mistakes of the client's, not the upstream's: a request body that cannot be read is no upstream failure, and a
/// request target holding a control character is refused before anything else sees it.
/// </summary>
public sealed class ClientErrorTests
{
    private const string ProxyCategory = "Floodgate.Gateway.Proxy";

    [Fact]
    public async Task A_malformed_chunked_body_is_counted_and_logged_at_debug_not_as_an_upstream_failure()
    {
        await using var gate = await LoggedGateway.StartAsync("upstream: {upstream}\n");

        // A first chunk, then a chunk size that is not hexadecimal.
        await RawHttp.SendAsync(gate.Host.ProxyAddress, "POST /h HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\nZZ\r\n");

        var line = await gate.Logs.FirstAsync(ProxyCategory);
        Assert.Equal(LogLevel.Debug, line.Level);
        // Answered 400, unless the upstream answered before the body failed.
        Assert.Matches(@"^Forwarding POST /h \(route upstream\) stopped: RequestBodyClient, the client's request body or connection failed \(Bad chunk size data\.\); answered \d{3}$", line.Message);
        Assert.DoesNotContain(gate.Logs.GetSnapshot(), e => e.Category == ProxyCategory && e.Level >= LogLevel.Warning);
        Assert.Contains("floodgate_proxy_errors_total{otel_scope_name=\"Floodgate.Gateway\",error=\"RequestBodyClient\",route=\"upstream\"} 1", await gate.MetricsAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_body_cut_short_is_counted_and_logged_at_debug_not_as_an_upstream_failure()
    {
        await using var gate = await LoggedGateway.StartAsync("upstream: {upstream}\n");

        // Ten bytes of the hundred promised, then the client stops sending.
        await RawHttp.SendAsync(gate.Host.ProxyAddress, "POST /h HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789", stopSending: true);

        // Kestrel takes the closed side for a departure and cancels the request, or reports the body cut short,
        // whichever comes first: either is the client's doing.
        var line = await gate.Logs.FirstAsync(ProxyCategory);
        Assert.Equal(LogLevel.Debug, line.Level);
        Assert.Matches(@"^Forwarding POST /h \(route upstream\) stopped: (RequestCanceled|RequestBodyCanceled|RequestBodyClient), ", line.Message);
        Assert.DoesNotContain(gate.Logs.GetSnapshot(), e => e.Category == ProxyCategory && e.Level >= LogLevel.Warning);
        Assert.Matches("floodgate_proxy_errors_total\\{otel_scope_name=\"Floodgate.Gateway\",error=\"(RequestCanceled|RequestBodyCanceled|RequestBodyClient)\",route=\"upstream\"\\} 1", await gate.MetricsAsync());
    }

    [Fact]
    public void Request_body_errors_of_the_client_are_logged_at_debug_outside_the_budget()
    {
        var logger = new FakeLogger();
        var failures = new ForwardingFailures(logger, new FakeTimeProvider(DateTimeOffset.UtcNow));
        IReadOnlyList<FakeLogRecord> Lines() => logger.Collector.GetSnapshot();
        var bad = new Microsoft.AspNetCore.Http.BadHttpRequestException("Unexpected end of request content.");
        var clientBody = Failed(ForwarderError.RequestBodyClient, new AggregateException(bad, new HttpRequestException("copy failed")), 400);
        for (var i = 0; i < 30; i++)
        {
            failures.Report(clientBody, "upstream");
        }

        Assert.Equal(30, Lines().Count);
        Assert.All(Lines(), l => Assert.Equal(LogLevel.Debug, l.Level));
        Assert.Equal("Forwarding POST /a (route upstream) stopped: RequestBodyClient, the client's request body or connection failed (Unexpected end of request content.); answered 400", Lines()[0].Message);

        // Writing to the client failed, or reading its upgraded stream: the client's side too.
        failures.Report(Failed(ForwarderError.ResponseBodyClient, new IOException("Broken pipe"), 200), "upstream");
        failures.Report(Failed(ForwarderError.UpgradeRequestClient, new IOException("Connection reset"), 101), "upstream");
        Assert.All(Lines(), l => Assert.Equal(LogLevel.Debug, l.Level));

        // The budget is whole for an upstream failure.
        for (var i = 0; i < 20; i++)
        {
            failures.Report(Failed(ForwarderError.Request, new HttpRequestException("Connection refused"), 502), "upstream");
        }

        Assert.Equal(20, Lines().Count(l => l.Level == LogLevel.Warning));
        Assert.EndsWith("(0 earlier failures not logged)", Lines()[^1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_control_character_in_the_request_target_is_refused_400_before_the_rate_limiter_and_the_upstream()
    {
        // Two requests a minute: a refused request counted by the edge tier would turn the second good one into a 429.
        await using var gate = await LoggedGateway.StartAsync("upstream: {upstream}\nedge:\n  - name: ip\n    limit: 2/min\n");

        // Raw, as Kestrel passes them on (it refuses %00 and raw non-ASCII itself), and percent-encoded in the path.
        foreach (var target in new[] { "/a\u0001b", "/a\tb", "/a\u007Fb", "/a?q=\u0001", "/a%01b", "/a%1Fb", "/a%7Fb", "/a%C2%85b" })
        {
            var response = await RawHttp.SendAsync(gate.Host.ProxyAddress, $"GET {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n");
            Assert.True(response.StartsWith("HTTP/1.1 400 ", StringComparison.Ordinal), $"{target}: {response}");
        }

        Assert.Equal(0, gate.Upstream.Hits);

        // UTF-8 and a space, percent-encoded, and a control character percent-encoded in the query (the upstream receives
        // it encoded, as sent) still pass.
        var utf8 = await RawHttp.SendAsync(gate.Host.ProxyAddress, "GET /caf%C3%A9/a%20b HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 ", utf8, StringComparison.Ordinal);
        Assert.Contains("\"path\":\"/caf\\u00E9/a b\"", utf8, StringComparison.Ordinal);
        var encoded = await RawHttp.SendAsync(gate.Host.ProxyAddress, "GET /caf%C3%A9?q=%01 HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 ", encoded, StringComparison.Ordinal);
        Assert.Contains("\"query\":\"?q=%01\"", encoded, StringComparison.Ordinal);
        Assert.Equal(2, gate.Upstream.Hits);
    }

    private static Microsoft.AspNetCore.Http.DefaultHttpContext Failed(ForwarderError error, Exception exception, int status)
    {
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Path = "/a";
        context.Response.StatusCode = status;
        context.Features.Set<IForwarderErrorFeature>(new Failure(error, exception));
        return context;
    }

    private sealed class Failure(ForwarderError error, Exception exception) : IForwarderErrorFeature
    {
        public ForwarderError Error => error;

        public Exception? Exception => exception;
    }

    /// <summary>HTTP/1.1 written by hand on a loopback socket, for what an HTTP client would refuse to send.</summary>
    private static class RawHttp
    {
        /// <summary>Sends <paramref name="request"/> (UTF-8) and reads until the server closes the connection.</summary>
        /// <param name="address">The server.</param>
        /// <param name="request">The request, head and body.</param>
        /// <param name="stopSending">Whether to close the sending side after the request, as a client cut off does.</param>
        public static async Task<string> SendAsync(Uri address, string request, bool stopSending = false)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, address.Port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.UTF8.GetBytes(request), timeout.Token);
            if (stopSending)
            {
                client.Client.Shutdown(SocketShutdown.Send);
            }

            using var response = new MemoryStream();
            try
            {
                await stream.CopyToAsync(response, timeout.Token);
            }
            catch (IOException)
            {
                // A reset after the answer: what was read is the answer.
            }

            return Encoding.UTF8.GetString(response.ToArray());
        }
    }

    /// <summary>A gateway logging at Debug into <see cref="Logs"/>, with a real echo upstream.</summary>
    private sealed class LoggedGateway : IAsyncDisposable
    {
        private readonly string _directory;

        // The host adds the provider to its logging but does not own it.
        private readonly FakeLoggerProvider _logs;

        private LoggedGateway(string directory, EchoUpstream upstream, GatewayHost host, FakeLoggerProvider logs)
        {
            _directory = directory;
            Upstream = upstream;
            Host = host;
            _logs = logs;
        }

        public EchoUpstream Upstream { get; }

        public GatewayHost Host { get; }

        public FakeLogCollector Logs => _logs.Collector;

        public static async Task<LoggedGateway> StartAsync(string policy)
        {
            var directory = Directory.CreateTempSubdirectory("floodgate-client-errors-").FullName;
            var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
            var logs = new FakeLoggerProvider();
            try
            {
                var path = Path.Combine(directory, "policy.yaml");
                await File.WriteAllTextAsync(path, policy.Replace("{upstream}", upstream.Address.ToString().TrimEnd('/'), StringComparison.Ordinal));
                var host = await GatewayHost.StartAsync(new GatewayHostOptions
                {
                    PolicyPath = path,
                    Listen = new Uri("http://127.0.0.1:0"),
                    Admin = new Uri("http://127.0.0.1:0"),
                    WatchPolicy = false,
                    LogLevel = LogLevel.Debug,
                    LoggerProvider = logs,
                });
                return new LoggedGateway(directory, upstream, host, logs);
            }
            catch
            {
                logs.Dispose();
                await upstream.DisposeAsync();
                Directory.Delete(directory, recursive: true);
                throw;
            }
        }

        public async Task<string> MetricsAsync()
        {
            using var admin = new HttpClient { BaseAddress = Host.AdminAddress, Timeout = TimeSpan.FromSeconds(30) };
            return await admin.GetStringAsync("/metrics");
        }

        public async ValueTask DisposeAsync()
        {
            await Host.DisposeAsync();
            _logs.Dispose();
            await Upstream.DisposeAsync();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
