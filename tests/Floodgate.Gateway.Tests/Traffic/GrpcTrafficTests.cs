using System.Globalization;
using System.Net;
using Floodgate.Gateway.Tests.Traffic.Protos;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// gRPC through the gateway: to an h2c upstream from an h2c listener, to a TLS upstream its cluster alone trusts (a
/// private CA, a client certificate, a server name) from a TLS listener, and a limited call answered as gRPC answers.
/// </summary>
public sealed class GrpcTrafficTests : IDisposable
{
    private readonly TestCertificates _certificates = TestCertificates.Create("Floodgate Upstream CA");

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public async Task Unary_and_server_streaming_calls_reach_an_h2c_upstream_through_an_h2c_listener()
    {
        await using var upstream = await GrpcUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(
            $"routes:\n  - path: /{{**rest}}\n    destinations: [{upstream.Url}]\n    http_version: h2c\n",
            HttpProtocols.Http2);
        Assert.Equal("http", gate.Host.ProxyAddress.Scheme);

        using var channel = GrpcChannel.ForAddress(gate.Host.ProxyAddress);
        await AssertCallsAsync(new Echo.EchoClient(channel));
    }

    [Fact]
    public async Task Calls_reach_a_TLS_upstream_that_only_its_cluster_trusts_with_its_client_certificate_and_server_name()
    {
        await using var upstream = await GrpcUpstream.StartAsync(_certificates, requireClientCertificate: true);
        var tls = $"ca: {_certificates.Authority}, client_cert: {_certificates.ClientCertificate}, client_key: {_certificates.ClientKey}";
        await using var gate = await TrafficGateway.StartAsync(
            $$"""
            routes:
              - id: untrusted
                path: /untrusted/{**rest}
                destinations: [{{upstream.Url}}]
                tls: { client_cert: {{_certificates.ClientCertificate}}, client_key: {{_certificates.ClientKey}} }
              - id: wrong-name
                path: /wrong-name/{**rest}
                destinations: [{{upstream.Url}}]
                tls: { {{tls}}, server_name: api.example.com }
              - id: anonymous
                path: /anonymous/{**rest}
                destinations: [{{upstream.Url}}]
                tls: { ca: {{_certificates.Authority}} }
              - id: grpc
                path: /{**rest}
                order: 100
                destinations: [{{upstream.Url}}]
                http_version: 2
                tls: { {{tls}}, server_name: localhost, protocols: [tls13] }
            """,
            certificate: _certificates.ServerCertificate,
            key: _certificates.ServerKey);

        using var channel = GrpcChannel.ForAddress(gate.Host.ProxyAddress, new GrpcChannelOptions { HttpHandler = GrpcUpstream.TrustingHandler(_certificates) });
        await AssertCallsAsync(new Echo.EchoClient(channel));
        Assert.Equal("localhost", upstream.Handshakes.ServerName);
        Assert.Equal("CN=floodgate", upstream.Handshakes.ClientSubject);

        // The private CA is trusted by the clusters that name it, and by nothing else: without it the upstream's
        // certificate is refused (502); so is a certificate that does not carry the cluster's server name, and a
        // connection without the client certificate the upstream requires.
        using var client = new HttpClient(GrpcUpstream.TrustingHandler(_certificates)) { BaseAddress = gate.Host.ProxyAddress, Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal(HttpStatusCode.BadGateway, (await client.GetAsync(new Uri("/untrusted/x", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, (await client.GetAsync(new Uri("/wrong-name/x", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, (await client.GetAsync(new Uri("/anonymous/x", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task A_reload_that_gives_a_cluster_its_CA_builds_the_cluster_a_new_client_that_trusts_it()
    {
        await using var upstream = await GrpcUpstream.StartAsync(_certificates);
        const string Policy = "routes:\n  - path: /{{**rest}}\n    destinations: [{0}]\n    tls: {{ server_name: localhost{1} }}\n";
        await using var gate = await TrafficGateway.StartAsync(string.Format(null, Policy, upstream.Url, string.Empty));
        using var client = gate.Client();
        Assert.Equal(HttpStatusCode.BadGateway, (await client.GetAsync(new Uri("/x", UriKind.Relative))).StatusCode);

        // The HTTP client config is the same; the metadata that names the CA is not, and the client is built anew.
        Assert.Empty(await gate.ReloadAsync(string.Format(null, Policy, upstream.Url, $", ca: {_certificates.Authority}")));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri("/x", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task A_limited_call_gets_RESOURCE_EXHAUSTED_with_the_pushback_and_the_limit_headers()
    {
        await using var upstream = await GrpcUpstream.StartAsync();
        // On a clock that stands still, the retry is exactly what the rule says: 30 s for 2/min.
        await using var gate = await TrafficGateway.StartAsync(
            $$"""
            routes:
              - path: /{**rest}
                destinations: [{{upstream.Url}}]
                http_version: h2c
            edge:
              - name: per-ip
                limit: 2/min
            """,
            HttpProtocols.Http2,
            time: new FakeTimeProvider(DateTimeOffset.UtcNow));
        using var channel = GrpcChannel.ForAddress(gate.Host.ProxyAddress);
        var client = new Echo.EchoClient(channel);
        Assert.Equal("echo: 1", (await client.SayAsync(new EchoRequest { Text = "1" })).Text);
        Assert.Equal("echo: 2", (await client.SayAsync(new EchoRequest { Text = "2" })).Text);

        var limited = await Assert.ThrowsAsync<RpcException>(async () => await client.SayAsync(new EchoRequest { Text = "3" }));
        Assert.Equal(StatusCode.ResourceExhausted, limited.StatusCode);
        Assert.Equal("The edge rule 'per-ip' is over its limit; retry after 30 seconds.", limited.Status.Detail);
        var pushback = long.Parse(limited.Trailers.GetValue("grpc-retry-pushback-ms")!, CultureInfo.InvariantCulture);
        Assert.InRange(pushback, 29_000, 30_000);
        Assert.StartsWith("\"per-ip\";r=0;t=", limited.Trailers.GetValue("ratelimit"), StringComparison.Ordinal);
        Assert.Equal("\"per-ip\";q=2;w=60", limited.Trailers.GetValue("ratelimit-policy"));

        // A streaming call is refused the same way, before its first message.
        using var stream = client.Count(new CountRequest { Count = 3 });
        var refused = await Assert.ThrowsAsync<RpcException>(() => stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
    }

    private static async Task AssertCallsAsync(Echo.EchoClient client)
    {
        Assert.Equal("echo: hello", (await client.SayAsync(new EchoRequest { Text = "hello" })).Text);
        using var stream = client.Count(new CountRequest { Count = 5 });
        var replies = new List<string>();
        while (await stream.ResponseStream.MoveNext(CancellationToken.None))
        {
            replies.Add(stream.ResponseStream.Current.Text);
        }

        Assert.Equal(["1", "2", "3", "4", "5"], replies);
    }
}
