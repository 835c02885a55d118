using System.Net;
using Floodgate.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Floodgate.AspNetCore.Tests.Middleware;

public sealed class TrustedProxiesTests
{
    private static readonly TrustedProxies Proxies = new(["10.0.0.0/8", "192.168.1.1", "fd00::/8"]);

    [Theory]
    [InlineData("203.0.113.9", "198.51.100.1", "203.0.113.9")] // untrusted peer: its header is ignored
    [InlineData("10.0.0.1", "198.51.100.1", "198.51.100.1")]
    [InlineData("10.0.0.1", "198.51.100.1, 10.2.3.4", "198.51.100.1")] // walk right to left over trusted hops
    [InlineData("10.0.0.1", "1.1.1.1, 198.51.100.1, 10.2.3.4", "198.51.100.1")] // the leftmost entry is the client's to forge
    [InlineData("10.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.2")] // every hop trusted: the leftmost
    [InlineData("10.0.0.1", "garbage", "10.0.0.1")] // unparseable: the last trusted hop
    [InlineData("192.168.1.1", "198.51.100.1:4711", "198.51.100.1")]
    [InlineData("::ffff:10.0.0.1", "198.51.100.1", "198.51.100.1")] // IPv4 through a dual-stack socket
    [InlineData("10.0.0.1", "[2001:db8::17]:4711", "2001:db8::17")] // bracketed IPv6 with a port
    [InlineData("10.0.0.1", "[2001:db8::17]", "2001:db8::17")]
    [InlineData("10.0.0.1", "2001:db8::17", "2001:db8::17")]
    [InlineData("10.0.0.1", "203.0.113.1, [fd00::5]:80", "203.0.113.1")] // a trusted IPv6 hop with a port is walked over
    public void X_forwarded_for_is_walked_from_the_right_over_trusted_hops(string peer, string header, string expected)
    {
        var client = Proxies.ResolveClient(IPAddress.Parse(peer), StringValues.Empty, new StringValues(header));
        Assert.Equal(IPAddress.Parse(expected), client);
    }

    [Fact]
    public void Several_header_lines_are_one_list()
    {
        var client = Proxies.ResolveClient(IPAddress.Parse("10.0.0.1"), StringValues.Empty, new StringValues(["198.51.100.1", "10.9.9.9"]));
        Assert.Equal(IPAddress.Parse("198.51.100.1"), client);
    }

    [Theory]
    [InlineData(new[] { "203.0.113.1", "198.51.100.1" }, "198.51.100.1")] // the last line is the nearest hop
    [InlineData(new[] { "203.0.113.1, 10.0.0.7", "198.51.100.1" }, "198.51.100.1")]
    [InlineData(new[] { "203.0.113.1", "198.51.100.1, 10.0.0.7" }, "198.51.100.1")]
    [InlineData(new[] { "203.0.113.1", "10.0.0.7", "10.0.0.8" }, "203.0.113.1")] // trusted lines walked back to the first
    [InlineData(new[] { "203.0.113.1", "", "10.0.0.8" }, "203.0.113.1")] // an empty line adds no hop
    public void Several_header_lines_are_walked_from_the_last_line_back(string[] lines, string expected)
    {
        // Each proxy appends its hop to the end of the last line or as a line of its own: the lines, joined in order,
        // are the one list, so the walk starts at the end of the last line.
        var client = Proxies.ResolveClient(IPAddress.Parse("10.0.0.1"), StringValues.Empty, new StringValues(lines));
        Assert.Equal(IPAddress.Parse(expected), client);

        var forwarded = new TrustedProxies(["10.0.0.0/8"], ForwardedHeader.Forwarded);
        var asForwarded = lines.Select(l => string.Join(", ", l.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(a => "for=" + a))).ToArray();
        Assert.Equal(IPAddress.Parse(expected), forwarded.ResolveClient(IPAddress.Parse("10.0.0.1"), new StringValues(asForwarded), StringValues.Empty));
    }

    [Theory]
    [InlineData("for=198.51.100.1", "198.51.100.1")]
    [InlineData("for=\"[2001:db8::17]:4711\";proto=https, for=10.1.1.1", "2001:db8::17")]
    [InlineData("for=198.51.100.1;by=10.0.0.1, for=\"10.3.3.3\"", "198.51.100.1")]
    [InlineData("for=unknown", "10.0.0.1")]
    [InlineData("for=_hidden, for=10.2.2.2", "10.2.2.2")] // obfuscated: the last trusted hop
    public void Forwarded_is_parsed_per_rfc_7239_when_it_is_the_configured_header(string header, string expected)
    {
        var proxies = new TrustedProxies(["10.0.0.0/8", "192.168.1.1", "fd00::/8"], ForwardedHeader.Forwarded);
        var client = proxies.ResolveClient(IPAddress.Parse("10.0.0.1"), new StringValues(header), new StringValues("203.0.113.1"));
        Assert.NotNull(client);
        Assert.Equal(IPAddress.Parse(expected), client.IsIPv4MappedToIPv6 ? client.MapToIPv4() : client);
    }

    [Fact]
    public void Without_trusted_proxies_the_peer_is_the_client()
    {
        Assert.Equal(IPAddress.Loopback, TrustedProxies.None.ResolveClient(IPAddress.Loopback, new StringValues("for=1.2.3.4"), new StringValues("1.2.3.4")));
    }

    [Fact]
    public void A_malformed_range_is_refused_with_its_text()
    {
        var error = Assert.Throws<FormatException>(() => new TrustedProxies(["10.0.0.0/33"]));
        Assert.Contains("10.0.0.0/33", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("::ffff:10.0.0.0/104", "10.0.0.0/8")]
    [InlineData("::ffff:10.0.0.5", "10.0.0.5/32")]
    [InlineData("::ffff:10.0.0.5/128", "10.0.0.5/32")]
    [InlineData("::ffff:0:0/96", "0.0.0.0/0")]
    [InlineData("::ffff:192.168.1.0/120", "192.168.1.0/24")]
    public void An_ipv4_mapped_range_is_the_ipv4_range_it_maps(string range, string expected)
    {
        Assert.Equal(IPNetwork.Parse(expected), TrustedProxies.ParseRange(range));

        // Peers are compared as IPv4 whichever socket they came through, so the mapped range trusts both forms.
        var proxies = new TrustedProxies([range]);
        var inside = IPNetwork.Parse(expected).BaseAddress;
        Assert.True(proxies.IsTrusted(inside));
        Assert.True(proxies.IsTrusted(inside.MapToIPv6()));
        Assert.Equal(IPAddress.Parse("203.0.113.9"), proxies.ResolveClient(inside.MapToIPv6(), new StringValues("203.0.113.9")));
    }

    [Theory]
    [InlineData("::ffff:10.0.0.0/80")]
    [InlineData("::ffff:10.0.0.0/95")]
    public void An_ipv4_mapped_range_shorter_than_96_bits_is_refused(string range)
    {
        var error = Assert.Throws<FormatException>(() => TrustedProxies.ParseRange(range));
        Assert.Contains(range, error.Message, StringComparison.Ordinal);
        Assert.Contains("/96", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_sent_forwarded_header_is_ignored_when_the_proxies_write_x_forwarded_for()
    {
        // nginx appends X-Forwarded-For and passes the client's own Forwarded header through.
        var client = Proxies.ResolveClient(IPAddress.Parse("10.0.0.1"), new StringValues("for=198.51.100.9"), new StringValues("203.0.113.7"));
        Assert.Equal(IPAddress.Parse("203.0.113.7"), client);
    }

    [Fact]
    public void A_client_sent_x_forwarded_for_is_ignored_when_the_proxies_write_forwarded()
    {
        var proxies = new TrustedProxies(["10.0.0.0/8"], ForwardedHeader.Forwarded);
        var client = proxies.ResolveClient(IPAddress.Parse("10.0.0.1"), new StringValues("for=203.0.113.7"), new StringValues("198.51.100.9"));
        Assert.Equal(IPAddress.Parse("203.0.113.7"), client);
    }
}
