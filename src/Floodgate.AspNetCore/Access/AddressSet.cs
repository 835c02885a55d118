using System.Net;
using System.Net.Sockets;

namespace Floodgate.AspNetCore.Access;

/// <summary>
/// Addresses and CIDR ranges, asked whether they hold a client IP: single addresses in a hash set (one lookup however
/// many), ranges tried in turn. IPv4-mapped IPv6 addresses are compared as the IPv4 addresses they map.
/// </summary>
internal sealed class AddressSet
{
    private readonly HashSet<IPAddress> _addresses = [];
    private readonly IPNetwork[] _ranges;

    public AddressSet(IEnumerable<string> ranges)
    {
        var list = new List<IPNetwork>();
        foreach (var text in ranges)
        {
            var network = Http.TrustedProxies.ParseRange(text);
            var full = network.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            if (network.PrefixLength == full)
            {
                _addresses.Add(network.BaseAddress);
            }
            else
            {
                list.Add(network);
            }
        }

        _ranges = [.. list];
    }

    /// <summary>Whether the set holds nothing.</summary>
    public bool IsEmpty => _addresses.Count == 0 && _ranges.Length == 0;

    /// <summary>Whether <paramref name="address"/> is one of the addresses or in one of the ranges.</summary>
    public bool Contains(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (_addresses.Count > 0 && _addresses.Contains(address))
        {
            return true;
        }

        foreach (var range in _ranges)
        {
            if (range.Contains(address))
            {
                return true;
            }
        }

        return false;
    }
}
