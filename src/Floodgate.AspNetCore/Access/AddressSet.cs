using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Floodgate.AspNetCore.Access;

/// <summary>
/// Addresses and CIDR ranges, asked whether they hold a client IP. Ranges are grouped by prefix length, each group a hash
/// set of network numbers, so a lookup costs one masked hash lookup per distinct prefix length (at most 33 for IPv4, 129
/// for IPv6; a handful in practice), however many entries the lists hold, and allocates nothing. IPv4-mapped IPv6
/// addresses are compared as the IPv4 addresses they map.
/// </summary>
internal sealed class AddressSet
{
    private readonly (int Prefix, HashSet<uint> Networks)[] _v4;
    private readonly (int Prefix, HashSet<UInt128> Networks)[] _v6;

    public AddressSet(IEnumerable<string> ranges)
    {
        var v4 = new SortedDictionary<int, HashSet<uint>>();
        var v6 = new SortedDictionary<int, HashSet<UInt128>>();
        foreach (var text in ranges)
        {
            var network = Http.TrustedProxies.ParseRange(text);
            var prefix = network.PrefixLength;
            if (network.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
            {
                (v4.TryGetValue(prefix, out var set) ? set : v4[prefix] = []).Add(Mask(V4(network.BaseAddress), prefix));
            }
            else
            {
                (v6.TryGetValue(prefix, out var set) ? set : v6[prefix] = []).Add(Mask(V6(network.BaseAddress), prefix));
            }
        }

        // Longest prefixes first: single addresses, the usual bulk of a deny list, are found by the first lookup.
        _v4 = [.. v4.Reverse().Select(p => (p.Key, p.Value))];
        _v6 = [.. v6.Reverse().Select(p => (p.Key, p.Value))];
    }

    /// <summary>Whether the set holds nothing.</summary>
    public bool IsEmpty => _v4.Length == 0 && _v6.Length == 0;

    /// <summary>Whether <paramref name="address"/> is one of the addresses or in one of the ranges.</summary>
    public bool Contains(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var value = V4(address);
            foreach (var (prefix, networks) in _v4)
            {
                if (networks.Contains(Mask(value, prefix)))
                {
                    return true;
                }
            }

            return false;
        }

        var wide = V6(address);
        foreach (var (prefix, networks) in _v6)
        {
            if (networks.Contains(Mask(wide, prefix)))
            {
                return true;
            }
        }

        return false;
    }

    private static uint V4(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    private static UInt128 V6(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        return BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }

    private static uint Mask(uint value, int prefix) => prefix == 0 ? 0 : value & (uint.MaxValue << (32 - prefix));

    private static UInt128 Mask(UInt128 value, int prefix) => prefix == 0 ? UInt128.Zero : value & (UInt128.MaxValue << (128 - prefix));
}
