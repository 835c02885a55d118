namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// What the upstream is told of the client: only what the gateway's trusted proxies vouched for, plus the gateway's own
/// peer, scheme and host, as each route's <c>x_forwarded</c> says (YARP's X-Forwarded transform and its actions).
/// </summary>
public sealed class ForwardedHeadersTests
{
    // The test client is the peer, 127.0.0.1; 10.0.0.0/8 stands for the load balancers in front of the gateway.
    private const string Trusted = "trusted_proxies: [127.0.0.1, 10.0.0.0/8]\n";

    private static string Policy(TrafficUpstream upstream, string top = Trusted) => top + $$"""
        routes:
          - id: append
            path: /append/{**rest}
            destinations: [{{upstream.Url}}]
          - id: set
            path: /set/{**rest}
            destinations: [{{upstream.Url}}]
            x_forwarded: set
          - id: remove
            path: /remove/{**rest}
            destinations: [{{upstream.Url}}]
            x_forwarded: remove
          - id: off
            path: /off/{**rest}
            destinations: [{{upstream.Url}}]
            x_forwarded: off
          - id: original
            path: /original/{**rest}
            destinations: [{{upstream.Url}}]
            original_host: true
        """;

    [Fact]
    public async Task Through_a_trusted_chain_the_upstream_gets_the_client_the_chain_and_the_original_scheme_and_host()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(Policy(upstream));
        var self = gate.Host.ProxyAddress.Authority;

        // 198.51.100.9 is what the client wrote itself; the load balancer 10.0.0.2 appended the client it saw,
        // 203.0.113.7, and set the scheme, host and path base the client used; the trusted 127.0.0.1 appended 10.0.0.2.
        var headers = await SendAsync(gate, "/append/a", LoadBalanced);
        Assert.Equal("203.0.113.7, 10.0.0.2, 127.0.0.1", headers["x-forwarded-for"]);
        Assert.Equal("https, http", headers["x-forwarded-proto"]);
        Assert.Equal($"api.example.com, {self}", headers["x-forwarded-host"]);
        Assert.Equal("/shop", headers["x-forwarded-prefix"]);
        Assert.Equal("203.0.113.7", headers["x-real-ip"]);

        // set: the gateway's own view only, as if nothing were in front of it.
        headers = await SendAsync(gate, "/set/a", LoadBalanced);
        Assert.Equal("127.0.0.1", headers["x-forwarded-for"]);
        Assert.Equal("http", headers["x-forwarded-proto"]);
        Assert.Equal(self, headers["x-forwarded-host"]);

        // remove: none at all, the client's included.
        headers = await SendAsync(gate, "/remove/a", LoadBalanced);
        Assert.DoesNotContain(headers.Keys, k => k.StartsWith("x-forwarded-", StringComparison.Ordinal));

        // off: passed through as they came, whoever wrote them.
        headers = await SendAsync(gate, "/off/a", LoadBalanced);
        Assert.Equal("198.51.100.9, 203.0.113.7, 10.0.0.2", headers["x-forwarded-for"]);
        Assert.Equal("https", headers["x-forwarded-proto"]);
    }

    [Fact]
    public async Task From_an_untrusted_client_its_own_forwarding_headers_are_dropped_and_only_the_gateway_s_view_is_sent()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(Policy(upstream, top: "trusted_proxies: [10.0.0.0/8]\n"));
        var self = gate.Host.ProxyAddress.Authority;

        var headers = await SendAsync(gate, "/append/a", LoadBalanced);
        Assert.Equal("127.0.0.1", headers["x-forwarded-for"]);
        Assert.Equal("http", headers["x-forwarded-proto"]);
        Assert.Equal(self, headers["x-forwarded-host"]);
        Assert.False(headers.ContainsKey("x-real-ip"));
        Assert.False(headers.ContainsKey("forwarded"));
        Assert.False(headers.ContainsKey("x-forwarded-prefix"));
    }

    [Fact]
    public async Task A_trusted_RFC_7239_Forwarded_header_gives_the_chain_scheme_and_host()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(Policy(upstream, top: Trusted + "forwarded_header: forwarded\n"));
        var self = gate.Host.ProxyAddress.Authority;

        var headers = await SendAsync(gate, "/append/a", request =>
        {
            request.Headers.TryAddWithoutValidation("Forwarded", "for=198.51.100.9, for=203.0.113.7;proto=https;host=api.example.com");
            request.Headers.TryAddWithoutValidation("X-Forwarded-For", "192.0.2.1");
        });

        // The X-Forwarded-For the client sent is not the header these proxies write: replaced, as Forwarded is by YARP.
        Assert.Equal("203.0.113.7, 127.0.0.1", headers["x-forwarded-for"]);
        Assert.Equal("https, http", headers["x-forwarded-proto"]);
        Assert.Equal($"api.example.com, {self}", headers["x-forwarded-host"]);
        Assert.False(headers.ContainsKey("forwarded"));
    }

    [Fact]
    public async Task The_original_host_goes_upstream_only_on_a_route_that_asks_for_it()
    {
        await using var upstream = await TrafficUpstream.StartAsync();
        await using var gate = await TrafficGateway.StartAsync(Policy(upstream));

        var headers = await SendAsync(gate, "/original/a", request => request.Headers.Host = "api.example.com");
        Assert.Equal("api.example.com", headers["host"]);

        headers = await SendAsync(gate, "/append/a", request => request.Headers.Host = "api.example.com");
        Assert.Equal(upstream.Address.Authority, headers["host"]);
    }

    private static void LoadBalanced(HttpRequestMessage request)
    {
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", "198.51.100.9, 203.0.113.7, 10.0.0.2");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", "api.example.com");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Prefix", "/shop");
        request.Headers.TryAddWithoutValidation("X-Real-IP", "203.0.113.7");
    }

    private static async Task<Dictionary<string, string>> SendAsync(TrafficGateway gate, string path, Action<HttpRequestMessage> headers)
    {
        using var client = gate.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        headers(request);
        using var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return await TrafficUpstream.HeadersAsync(response);
    }
}
