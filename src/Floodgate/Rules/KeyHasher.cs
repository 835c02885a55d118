using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Runtime.InteropServices;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Rules;

/// <summary>Turns a rule's key parts, read from a request, into a <see cref="StoreKey"/> without allocating.</summary>
internal static class KeyHasher
{
    [ThreadStatic]
    private static XxHash128? t_identity;

    [ThreadStatic]
    private static XxHash128? t_value;

    /// <summary>Builds the key; <see langword="false"/> when the request lacks a part, so the rule does not apply.</summary>
    public static bool TryBuild(RateLimitRule rule, Limit limit, IRequestContext request, int ipv6Prefix, out StoreKey key)
    {
        var identity = t_identity ??= new XxHash128();
        var value = t_value ??= new XxHash128();
        identity.Reset();
        value.Reset();
        AppendString(value, 0xF0, rule.Name);
        Span<byte> algorithm = [0xF1, (byte)limit.Algorithm];
        value.Append(algorithm);
        var hasIdentity = false;
        Span<byte> address = stackalloc byte[17];
        var parts = rule.Key;
        for (var i = 0; i < parts.Count; i++)
        {
            var part = parts[i];
            var tag = (byte)part.Kind;
            if (part.Kind == KeyPartKind.ClientIp)
            {
                if (request.ClientIp is not { } ip)
                {
                    key = default;
                    return false;
                }

                var length = WriteAddress(ip, ipv6Prefix, address[1..]);
                address[0] = tag;
                identity.Append(address[..(length + 1)]);
                value.Append(address[..(length + 1)]);
                hasIdentity = true;
                continue;
            }

            var text = part.Kind switch
            {
                KeyPartKind.Subject => request.Subject,
                KeyPartKind.Claim => request.GetClaim(part.Name!),
                KeyPartKind.Header => request.GetHeader(part.Name!),
                KeyPartKind.Route => rule.Match.Route?.Template ?? request.RouteTemplate ?? request.Path,
                KeyPartKind.Method => request.Method,
                KeyPartKind.Path => request.Path,
                KeyPartKind.Host => request.Host,
                KeyPartKind.Plan => request.Plan ?? rule.DefaultPlan ?? string.Empty,
                _ => part.Name,
            };
            if (text is null)
            {
                key = default;
                return false;
            }

            if (part.IsIdentity)
            {
                AppendString(identity, tag, text);
                hasIdentity = true;
            }

            AppendString(value, tag, text);
        }

        var valueHash = value.GetCurrentHashAsUInt128();
        key = new StoreKey(hasIdentity ? identity.GetCurrentHashAsUInt128() : valueHash, valueHash);
        return true;
    }

    /// <summary>Hashes a key outside the rule model: a scope (such as a limiter or descriptor name), an identity and a qualifier.</summary>
    public static StoreKey Hash(string scope, string identity, string? qualifier)
    {
        var identityHash = t_identity ??= new XxHash128();
        var value = t_value ??= new XxHash128();
        identityHash.Reset();
        value.Reset();
        AppendString(identityHash, 0xF2, identity);
        AppendString(value, 0xF0, scope);
        AppendString(value, 0xF2, identity);
        if (qualifier is not null)
        {
            AppendString(value, 0xF3, qualifier);
        }

        return new StoreKey(identityHash.GetCurrentHashAsUInt128(), value.GetCurrentHashAsUInt128());
    }

    private static void AppendString(XxHash128 hash, byte tag, string text)
    {
        // The tag and the length make ("ab","c") and ("a","bc") different keys.
        Span<byte> header = stackalloc byte[5];
        header[0] = tag;
        BinaryPrimitives.WriteInt32LittleEndian(header[1..], text.Length);
        hash.Append(header);
        hash.Append(MemoryMarshal.AsBytes(text.AsSpan()));
    }

    private static int WriteAddress(IPAddress ip, int ipv6Prefix, Span<byte> destination)
    {
        ip.TryWriteBytes(destination, out var written);
        if (written == 16 && destination[..10].IndexOfAnyExcept((byte)0) < 0 && destination[10] == 0xFF && destination[11] == 0xFF)
        {
            // An IPv4 client seen through a dual-stack socket is the same client as over IPv4.
            destination[12..16].CopyTo(destination);
            return 4;
        }

        if (written == 16 && ipv6Prefix < 128)
        {
            var full = ipv6Prefix / 8;
            var bits = ipv6Prefix % 8;
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
