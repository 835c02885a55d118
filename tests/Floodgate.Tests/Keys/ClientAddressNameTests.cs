using System.Net;
using Floodgate.Keys;

namespace Floodgate.Tests.Keys;

/// <summary>
/// The name a client IP is banned and keyed by: an IPv4 address as itself, an IPv4-mapped IPv6 address as the IPv4
/// address, an IPv6 address as its network of the policy's prefix length, cut to the bit.
/// </summary>
public sealed class ClientAddressNameTests
{
    [Theory]
    [InlineData("203.0.113.7", 64, "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", 64, "203.0.113.7")]
    [InlineData("2001:db8:abcd:1234:5678:9abc:def0:1234", 64, "2001:db8:abcd:1234::/64")]
    [InlineData("2001:db8:abcd:1234:5678:9abc:def0:1234", 56, "2001:db8:abcd:1200::/56")]
    [InlineData("2001:db8:abcd:1234:5678:9abc:def0:1234", 60, "2001:db8:abcd:1230::/60")] // half a byte
    [InlineData("2001:db8:abcd:1234:5678:9abc:def0:1234", 63, "2001:db8:abcd:1234::/63")] // 0x34 & 0xFE
    [InlineData("2001:db8:abcd:1235:5678:9abc:def0:1234", 63, "2001:db8:abcd:1234::/63")] // 0x35 & 0xFE
    [InlineData("2001:db8:abcd:1234:5678:9abc:def0:1234", 72, "2001:db8:abcd:1234:5600::/72")]
    [InlineData("a001:db8::1", 1, "8000::/1")]
    [InlineData("2001:db8::1", 127, "2001:db8::/127")]
    [InlineData("2001:db8::1", 128, "2001:db8::1")]
    [InlineData("2001:db8::1", 0, "::/0")]
    public void A_client_ip_is_named_by_its_network(string address, int prefix, string expected) =>
        Assert.Equal(expected, ClientAddress.Name(IPAddress.Parse(address), prefix));
}
