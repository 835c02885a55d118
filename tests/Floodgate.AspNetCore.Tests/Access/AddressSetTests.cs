using System.Net;
using Floodgate.AspNetCore.Access;

namespace Floodgate.AspNetCore.Tests.Access;

public sealed class AddressSetTests
{
    private static readonly AddressSet Set = new(["203.0.113.9", "198.51.100.0/24", "10.0.0.0/8", "192.0.2.128/25", "2001:db8::/32", "2001:db8:ffff::1", "::ffff:100.64.0.0/106", "fd00::1/128"]);

    [Theory]
    [InlineData("203.0.113.9", true)]
    [InlineData("203.0.113.8", false)]
    [InlineData("203.0.113.10", false)]
    [InlineData("198.51.100.0", true)]
    [InlineData("198.51.100.255", true)]
    [InlineData("198.51.101.0", false)]
    [InlineData("198.51.99.255", false)]
    [InlineData("10.255.255.255", true)]
    [InlineData("11.0.0.0", false)]
    [InlineData("9.255.255.255", false)]
    [InlineData("192.0.2.128", true)]
    [InlineData("192.0.2.127", false)]
    [InlineData("::ffff:203.0.113.9", true)]
    [InlineData("::ffff:203.0.113.8", false)]
    [InlineData("100.64.0.1", true)]
    [InlineData("100.127.255.255", true)]
    [InlineData("100.128.0.0", false)]
    [InlineData("2001:db8::1", true)]
    [InlineData("2001:db8:ffff:ffff::", true)]
    [InlineData("2001:db9::", false)]
    [InlineData("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false)]
    [InlineData("fd00::1", true)]
    [InlineData("fd00::2", false)]
    [InlineData("::1", false)]
    public void Holds_exactly_its_addresses_and_ranges(string address, bool held) =>
        Assert.Equal(held, Set.Contains(IPAddress.Parse(address)));

    [Fact]
    public void Everything_is_in_the_zero_prefix_and_nothing_in_the_empty_set()
    {
        Assert.True(new AddressSet(["0.0.0.0/0"]).Contains(IPAddress.Parse("255.255.255.255")));
        Assert.False(new AddressSet(["0.0.0.0/0"]).Contains(IPAddress.Parse("::2")));
        Assert.True(new AddressSet(["::/0"]).Contains(IPAddress.Parse("2001:db8::1")));
        var empty = new AddressSet([]);
        Assert.True(empty.IsEmpty);
        Assert.False(empty.Contains(IPAddress.Parse("192.0.2.1")));
    }
}
