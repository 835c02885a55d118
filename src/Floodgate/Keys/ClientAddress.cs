using System.Globalization;
using System.Net;

namespace Floodgate.Keys;

/// <summary>
/// How Floodgate names a client by its IP address, the one place that decides it: an IPv4 address as it is, an
/// IPv4-mapped IPv6 address as the IPv4 address (the same client over a dual-stack socket), and an IPv6 address as its
/// network of a prefix length's leading bits (/64 by default), since one host usually owns a whole /64 and could
/// otherwise rotate through it.
/// </summary>
/// <remarks>
/// Policy rules keyed on <c>client_ip</c> group addresses this way, and so do the front doors' bans and anonymous
/// callers. Key a partition of your own by <see cref="Name"/> to group clients as they do.
/// </remarks>
public static class ClientAddress
{
    /// <summary>The prefix length that names an IPv6 client by default: a /64.</summary>
    public const int DefaultIpv6PrefixLength = 64;

    /// <summary>
    /// The client's name as text: the IPv4 address, or the IPv6 network with its prefix length (<c>2001:db8:1:2::/64</c>);
    /// with a prefix length of 128, the whole IPv6 address as <see cref="IPAddress.ToString"/> writes it.
    /// </summary>
    /// <param name="address">The client's address.</param>
    /// <param name="ipv6PrefixLength">How many leading bits of an IPv6 address name the client, 0 to 128.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ipv6PrefixLength"/> is not from 0 to 128.</exception>
    public static string Name(IPAddress address, int ipv6PrefixLength = DefaultIpv6PrefixLength)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentOutOfRangeException.ThrowIfNegative(ipv6PrefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ipv6PrefixLength, 128);
        Span<byte> bytes = stackalloc byte[16];
        var length = Write(address, ipv6PrefixLength, bytes);
        if (length == 4)
        {
            return address.IsIPv4MappedToIPv6 ? new IPAddress(bytes[..4]).ToString() : address.ToString();
        }

        // Unmasked, the address keeps its scope (fe80::1%3) as it always has; a network has none.
        return ipv6PrefixLength >= 128
            ? address.ToString()
            : new IPAddress(bytes).ToString() + "/" + ipv6PrefixLength.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Writes the bytes that name the client into <paramref name="destination"/> (at least 16 bytes): 4 for an IPv4 or
    /// IPv4-mapped address, else 16 with every bit past <paramref name="ipv6PrefixLength"/> cleared.
    /// </summary>
    /// <returns>How many bytes were written.</returns>
    internal static int Write(IPAddress address, int ipv6PrefixLength, Span<byte> destination)
    {
        address.TryWriteBytes(destination, out var written);
        if (written == 16 && address.IsIPv4MappedToIPv6)
        {
            destination[12..16].CopyTo(destination);
            return 4;
        }

        if (written == 16 && ipv6PrefixLength < 128)
        {
            var full = ipv6PrefixLength / 8;
            var bits = ipv6PrefixLength % 8;
            if (bits > 0)
            {
                destination[full] &= (byte)(0xFF << (8 - bits));
                full++;
            }

            destination[full..16].Clear();
        }

        return written;
    }
}
