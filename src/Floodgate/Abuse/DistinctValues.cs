using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Floodgate.Rules;

namespace Floodgate.Abuse;

/// <summary>The 64-bit hash a distinct rule counts for a request: of the client address's network, or of a subject, claim or header.</summary>
internal static class DistinctValues
{
    /// <summary>The hash of the counted part; <see langword="false"/> when the request lacks it (the rule then does not apply).</summary>
    public static bool TryHash(DistinctCounting counting, IRequestContext request, out ulong hash)
    {
        var part = counting.Of;
        if (part.Kind == KeyPartKind.ClientIp)
        {
            if (request.ClientIp is not { } ip)
            {
                hash = 0;
                return false;
            }

            Span<byte> bytes = stackalloc byte[16];
            hash = XxHash64.HashToUInt64(bytes[..Network(ip, counting.Ipv4Prefix, counting.Ipv6Prefix, bytes)]);
            return true;
        }

        var text = part.Kind switch
        {
            KeyPartKind.Subject => request.Subject,
            KeyPartKind.Claim => request.GetClaim(part.Name!),
            _ => request.GetHeader(part.Name!),
        };
        if (text is null)
        {
            hash = 0;
            return false;
        }

        hash = XxHash64.HashToUInt64(MemoryMarshal.AsBytes(text.AsSpan()));
        return true;
    }

    /// <summary>Writes the address's network of the prefix for its family (IPv4-mapped as IPv4); the bytes written, 4 or 16.</summary>
    internal static int Network(IPAddress ip, int ipv4Prefix, int ipv6Prefix, Span<byte> destination)
    {
        ip.TryWriteBytes(destination, out var written);
        var prefix = ipv6Prefix;
        if (written == 16 && ip.IsIPv4MappedToIPv6)
        {
            destination[12..16].CopyTo(destination);
            written = 4;
        }

        if (written == 4 || ip.AddressFamily == AddressFamily.InterNetwork)
        {
            prefix = ipv4Prefix;
        }

        var full = prefix / 8;
        if (full < written)
        {
            var bits = prefix % 8;
            if (bits > 0)
            {
                destination[full] &= (byte)(0xFF << (8 - bits));
                full++;
            }

            destination[full..written].Clear();
        }

        return written;
    }
}
