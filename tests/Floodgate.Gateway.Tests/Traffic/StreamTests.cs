using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>Long-lived exchanges through the gateway: idle WebSockets and the cluster's activity timeout, event streams.</summary>
public sealed class StreamTests
{
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task An_idle_WebSocket_outlives_the_default_activity_timeout_on_a_cluster_that_sets_a_longer_one()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync($$"""
            proxy:
              activity_timeout: 1s
            routes:
              - id: short
                path: /short/{**rest}
                destinations: [{{upstream.Url}}]
              - id: long
                path: /long/{**rest}
                destinations: [{{upstream.Url}}]
                activity_timeout: 5s
            """);

        using var shortSocket = await ConnectAsync(gate, "/short/ws");
        using var longSocket = await ConnectAsync(gate, "/long/ws");
        var idleSince = Stopwatch.StartNew();

        // The default: idle for its second, the socket is cut by the gateway (no close handshake: 1006 to a browser).
        using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            var cut = await Record.ExceptionAsync(() => shortSocket.ReceiveAsync(new byte[16], bound.Token));
            Assert.IsType<WebSocketException>(cut);
            Assert.False(bound.IsCancellationRequested, "The idle socket was not cut within the bound.");
        }

        Assert.True(idleSince.Elapsed >= ShortTimeout * 0.9, $"Cut after {idleSince.Elapsed}, before the 1 s activity timeout.");

        // The cluster that says 5 s keeps its socket through more than twice the default, then it still echoes.
        var remaining = (ShortTimeout * 2.5) - idleSince.Elapsed;
        if (remaining > TimeSpan.Zero)
        {
            await Task.Delay(remaining);
        }

        Assert.Equal(WebSocketState.Open, longSocket.State);
        Assert.Equal("still here", await EchoAsync(longSocket, "still here"));
        await longSocket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);

        // The timeout did as configured: no upstream failure is logged for it.
        Assert.DoesNotContain(gate.Logs.GetSnapshot(), e => e.Category == "Floodgate.Gateway.Proxy" && e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task An_event_stream_s_headers_reach_the_client_before_its_first_event()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync($"upstream: {upstream.Url}\n");
        using var client = gate.Client();

        // The upstream has sent its headers and holds its first event until told: the headers must not wait for it.
        using var request = new HttpRequestMessage(HttpMethod.Get, "/events");
        request.Headers.Accept.ParseAdd("text/event-stream");
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, bound.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);

        upstream.ReleaseEvents();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(bound.Token));
        Assert.Equal("data: hello", await reader.ReadLineAsync(bound.Token));
    }

    private static async Task<ClientWebSocket> ConnectAsync(TrafficGateway gate, string path)
    {
        // No keep-alive pings: the test is about a socket with no traffic at all.
        var socket = new ClientWebSocket { Options = { KeepAliveInterval = TimeSpan.Zero } };
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{gate.Host.ProxyAddress.Port}{path}"), CancellationToken.None);
        Assert.Equal("hello", await EchoAsync(socket, "hello"));
        return socket;
    }

    private static async Task<string> EchoAsync(ClientWebSocket socket, string text)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, bound.Token);
        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, bound.Token);
        return Encoding.UTF8.GetString(buffer, 0, received.Count);
    }
}
