using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// Long-lived requests and concurrency permits across two gateway replicas sharing one real redis-server: a WebSocket
/// and an event stream keep their permits past three lease timeouts, a third request is refused by either replica, and
/// closing one frees its permit. Real time and real sockets, bounded: a second-long lease timeout, held for 3.5 s.
/// </summary>
public sealed class LeaseTests
{
    private static readonly TimeSpan LeaseTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_WebSocket_and_an_event_stream_on_two_replicas_keep_their_permits_past_three_lease_timeouts()
    {
        using var redis = RedisServer.Start();
        await using var upstream = await TrafficUpstream.StartAsync();
        var policy = $$"""
            upstream: {{upstream.Url}}
            store: { kind: redis, configuration: "{{redis.Configuration}}", on_failure: closed, timeout: 2s }
            global:
              - name: long-lived
                concurrency: 2
                lease_timeout: 1s
            """;
        await using var replicaA = await TrafficGateway.StartAsync(policy);
        await using var replicaB = await TrafficGateway.StartAsync(policy);
        using var clientA = replicaA.Client(Bound);
        using var clientB = replicaB.Client(Bound);

        // A WebSocket through A, an event stream through B: each holds one of the two permits.
        using var socket = new ClientWebSocket();
        using (var connect = new CancellationTokenSource(Bound))
        {
            await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{replicaA.Host.ProxyAddress.Port}/ws"), connect.Token);
        }

        Assert.Equal("hello", await EchoAsync(socket, "hello"));
        using var events = new HttpRequestMessage(HttpMethod.Get, "/events");
        using var stream = await clientB.SendAsync(events, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);

        // Three and a half lease timeouts, the socket in use now and then: the permits are renewed, not reclaimed.
        var held = Stopwatch.StartNew();
        while (held.Elapsed < LeaseTimeout * 3.5)
        {
            await Task.Delay(500);
            Assert.Equal("still here", await EchoAsync(socket, "still here"));
        }

        using (var third = await clientA.GetAsync("/third"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
        }

        using (var third = await clientB.GetAsync("/third"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
        }

        // The socket closes: its permit is free, on the other replica too.
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        await AdmittedAsync(clientB, "/after-close");

        // The stream ends: both permits are free.
        upstream.ReleaseEvents();
        Assert.Contains("data: hello", await stream.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await AdmittedAsync(clientA, "/after-stream");
        using (var both = await clientA.GetAsync("/both"))
        {
            Assert.Equal(HttpStatusCode.OK, both.StatusCode);
        }

        // Not one renewal found its lease gone: no replica stalled past the timeout.
        Assert.DoesNotContain(replicaA.Logs.GetSnapshot().Concat(replicaB.Logs.GetSnapshot()), e => e.Message.Contains("while its request was still running", StringComparison.Ordinal));
    }

    /// <summary>Asks until the request is admitted: a permit is given back once the gateway's request has ended.</summary>
    private static async Task AdmittedAsync(HttpClient client, string path)
    {
        // Bounded polling for the release that follows the close; not a sleep for correctness.
        for (var i = 0; i < 500; i++)
        {
            using var response = await client.GetAsync(path);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return;
            }

            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            await Task.Delay(20);
        }

        Assert.Fail($"{path} was not admitted within 10 seconds.");
    }

    private static async Task<string> EchoAsync(ClientWebSocket socket, string text)
    {
        using var bound = new CancellationTokenSource(Bound);
        await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, bound.Token);
        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, bound.Token);
        return Encoding.UTF8.GetString(buffer, 0, received.Count);
    }
}
