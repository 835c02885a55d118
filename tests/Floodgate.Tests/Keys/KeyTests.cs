using System.Net;
using System.Security.Cryptography;
using System.Text;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Tests.Keys;

public sealed class KeyTests
{
    /// <summary>
    /// Every key the engine and the adapters hand a store, as they were before keys moved into Floodgate.Keys: a key that
    /// changes forgets every count a shared store holds at the next deploy, so a change must be deliberate.
    /// </summary>
    [Fact]
    public async Task Keys_stay_the_same()
    {
        var cases = (await KeyCases.EngineKeysAsync()).Concat(KeyCases.OtherKeys()).ToList();
        Assert.Equal(269, cases.Count);
        Assert.Contains(("create", "{0b68d5b664c9920f456072986ac36694}:3f72c193637431389b0de57754334b8a"), cases);
        Assert.Contains(("create-qualified", "{0b68d5b664c9920f456072986ac36694}:0c34ff8fc47fe8c9e1a2c34e1d353854"), cases);
        Assert.Contains(("/64 2001:db8:1:2:3:4:5:6 fixed_window 1000/min", "{d1ddab597274632291528e109f9f2716}:e93c4a3de21b0b9b9a76441fd00729d5"), cases);
        Assert.Contains(("/64 anonymous fixed_window 1000/min", "{775e01b2344bbf5922010c095e40b49b}:5b96bb9b68ef1d26d47b8ffb5224e9b3"), cases);
        var all = string.Concat(cases.Select(c => $"{c.Case}={c.Key}\n"));
        Assert.Equal("fb7ea63ddec4481d820dd4779972d08caaac80ac5684b3db3a65c1168b785a0f", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(all))));
    }

    [Theory]
    [InlineData("203.0.113.7", 64, "203.0.113.7")]
    [InlineData("203.0.113.7", 128, "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", 8, "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", 128, "203.0.113.7")]
    [InlineData("2001:db8:1:2:3:4:5:6", 8, "2000::/8")]
    [InlineData("2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56")]
    [InlineData("2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2:ffff::9", 64, "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2:ffff::9", 127, "2001:db8:1:2:ffff::8/127")]
    [InlineData("2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6")]
    [InlineData("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 60, "2001:db8:ffff:fff0::/60")]
    [InlineData("fe80::1%3", 64, "fe80::/64")]
    [InlineData("fe80::1%3", 128, "fe80::1%3")]
    [InlineData("::1", 64, "::/64")]
    [InlineData("::1", 128, "::1")]
    public void A_client_is_named_by_its_ipv4_address_or_its_ipv6_network(string address, int prefix, string expected) =>
        Assert.Equal(expected, ClientAddress.Name(IPAddress.Parse(address), prefix));

    [Fact]
    public void Two_ipv6_addresses_in_one_64_are_one_client_for_rule_keys_and_for_named_keys()
    {
        var limit = Limit.FixedWindow(Rate.Parse("10/min"));
        var rule = new RateLimitRule("edge", RateLimitTier.Edge, limit);
        var one = IPAddress.Parse("2001:db8:1:2::1");
        var sameNetwork = IPAddress.Parse("2001:db8:1:2:ffff::9");
        var otherNetwork = IPAddress.Parse("2001:db8:1:3::1");

        // The engine's client_ip keys.
        StoreKey RuleKey(IPAddress ip) =>
            RuleKeys.TryBuild(rule, limit, new RequestContext { ClientIp = ip }, ClientAddress.DefaultIpv6PrefixLength, out var key) ? key : throw new InvalidOperationException();
        Assert.Equal(RuleKey(one), RuleKey(sameNetwork));
        Assert.NotEqual(RuleKey(one), RuleKey(otherNetwork));

        // The front doors' keys by name: a ban's bucket, an anonymous caller's subject.
        StoreKey BanKey(IPAddress ip) => StoreKey.Create("ban:edge", ClientAddress.Name(ip));
        Assert.Equal(BanKey(one), BanKey(sameNetwork));
        Assert.NotEqual(BanKey(one), BanKey(otherNetwork));

        // An IPv4 client is one client over IPv4 and through a dual-stack socket, in both.
        var v4 = IPAddress.Parse("203.0.113.7");
        Assert.Equal(RuleKey(v4), RuleKey(v4.MapToIPv6()));
        Assert.Equal(BanKey(v4), BanKey(v4.MapToIPv6()));
    }

    [Fact]
    public void A_prefix_length_outside_0_to_128_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ClientAddress.Name(IPAddress.IPv6Loopback, 129));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClientAddress.Name(IPAddress.IPv6Loopback, -1));
    }
}
