using System.Net;
using Floodgate.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>The chain a reverse proxy forwards: the addresses its trusted proxies vouch for, client first.</summary>
public sealed class TrustedChainTests
{
    private static readonly IPAddress Peer = IPAddress.Parse("10.0.0.1");

    [Theory]
    // The client wrote 198.51.100.9 itself; the trusted 10.0.0.2 saw 203.0.113.7.
    [InlineData("198.51.100.9, 203.0.113.7, 10.0.0.2", "203.0.113.7,10.0.0.2")]
    // Across several header lines, as a proxy that adds a line rather than appending to one writes it.
    [InlineData("198.51.100.9|203.0.113.7|10.0.0.2", "203.0.113.7,10.0.0.2")]
    // Every hop trusted: all of them, with ports and brackets read away.
    [InlineData("10.0.0.3:4711, [fd00::1]:80, 10.0.0.2", "10.0.0.3,fd00::1,10.0.0.2")]
    // A hop the chain cannot read ends it: what a trusted proxy wrote after it still stands.
    [InlineData("203.0.113.7, unknown, 10.0.0.2", "10.0.0.2")]
    [InlineData("", "")]
    public void The_chain_runs_from_the_client_to_the_last_trusted_hop_before_the_peer(string header, string expected)
    {
        var proxies = new TrustedProxies(["10.0.0.0/8", "fd00::/8"]);
        var chain = proxies.ResolveChain(Peer, new StringValues(header.Split('|')));
        Assert.Equal(expected, string.Join(",", chain));
        if (chain.Count > 0)
        {
            // The chain starts where the client IP is.
            Assert.Equal(proxies.ResolveClient(Peer, new StringValues(header.Split('|'))), chain[0]);
        }
    }

    [Fact]
    public void Nothing_is_vouched_for_from_a_peer_that_is_not_trusted()
    {
        var proxies = new TrustedProxies(["10.0.0.0/8"]);
        Assert.Empty(proxies.ResolveChain(IPAddress.Parse("192.0.2.1"), "203.0.113.7, 10.0.0.2"));
        Assert.Empty(TrustedProxies.None.ResolveChain(Peer, "203.0.113.7"));
        Assert.Empty(proxies.ResolveChain(null, "203.0.113.7"));
    }

    [Fact]
    public void The_RFC_7239_header_gives_its_for_parameters()
    {
        var proxies = new TrustedProxies(["10.0.0.0/8"], ForwardedHeader.Forwarded);
        var chain = proxies.ResolveChain(Peer, "for=198.51.100.9, for=\"[2001:db8::7]:443\";proto=https, for=10.0.0.2;by=10.0.0.1");
        Assert.Equal([IPAddress.Parse("2001:db8::7"), IPAddress.Parse("10.0.0.2")], chain);
    }
}
