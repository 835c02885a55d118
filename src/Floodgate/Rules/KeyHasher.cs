using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Rules;

/// <summary>Turns a rule's key parts, read from a request, into a <see cref="StoreKey"/> without allocating.</summary>
/// <remarks>
/// The parts are written, tagged and length-prefixed, into a stack buffer and hashed in one shot: XXH3's one-shot
/// path on a short input costs a few nanoseconds, its incremental state a few hundred. A part too large for the stack
/// (a hostile 10 KB subject) moves the buffer to the array pool.
/// </remarks>
[SkipLocalsInit]
internal static class KeyHasher
{
    // Room for a rule name, a subject or IP and a route without touching the heap.
    private const int StackBytes = 256;

    /// <summary>Builds the key; <see langword="false"/> when the request lacks a part, so the rule does not apply.</summary>
    public static bool TryBuild(RateLimitRule rule, Limit limit, IRequestContext request, int ipv6Prefix, out StoreKey key)
    {
        var identity = new KeyBuffer(stackalloc byte[StackBytes]);
        var value = new KeyBuffer(stackalloc byte[StackBytes]);
        try
        {
            value.Append(0xF0, rule.Name);
            value.Append(0xF1, (byte)limit.Algorithm);
            Span<byte> address = stackalloc byte[16];
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

                    var length = WriteAddress(ip, ipv6Prefix, address);
                    identity.Append(tag, address[..length]);
                    value.Append(tag, address[..length]);
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
                    identity.Append(tag, text);
                }

                value.Append(tag, text);
            }

            var valueHash = value.Hash();
            key = new StoreKey(identity.IsEmpty ? valueHash : identity.Hash(), valueHash);
            return true;
        }
        finally
        {
            identity.Dispose();
            value.Dispose();
        }
    }

    /// <summary>Hashes a key outside the rule model: a scope (such as a limiter or descriptor name), an identity and a qualifier.</summary>
    public static StoreKey Hash(string scope, string identity, string? qualifier)
    {
        var identityBuffer = new KeyBuffer(stackalloc byte[StackBytes]);
        var value = new KeyBuffer(stackalloc byte[StackBytes]);
        try
        {
            identityBuffer.Append(0xF2, identity);
            value.Append(0xF0, scope);
            value.Append(0xF2, identity);
            if (qualifier is not null)
            {
                value.Append(0xF3, qualifier);
            }

            return new StoreKey(identityBuffer.Hash(), value.Hash());
        }
        finally
        {
            identityBuffer.Dispose();
            value.Dispose();
        }
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

    /// <summary>Tagged, length-prefixed parts, so ("ab","c") and ("a","bc") differ; on the stack unless too large.</summary>
    private ref struct KeyBuffer(Span<byte> initial)
    {
        private Span<byte> _buffer = initial;
        private byte[]? _rented;
        private int _length;

        public readonly bool IsEmpty => _length == 0;

        public void Append(byte tag, byte value)
        {
            var span = Reserve(2);
            span[0] = tag;
            span[1] = value;
        }

        public void Append(byte tag, string text)
        {
            var bytes = MemoryMarshal.AsBytes(text.AsSpan());
            var span = Reserve(5 + bytes.Length);
            span[0] = tag;
            BinaryPrimitives.WriteInt32LittleEndian(span[1..], text.Length);
            bytes.CopyTo(span[5..]);
        }

        public void Append(byte tag, ReadOnlySpan<byte> bytes)
        {
            var span = Reserve(2 + bytes.Length);
            span[0] = tag;
            span[1] = (byte)bytes.Length;
            bytes.CopyTo(span[2..]);
        }

        public readonly UInt128 Hash() => XxHash128.HashToUInt128(_buffer[.._length]);

        public readonly void Dispose()
        {
            if (_rented is not null)
            {
                ArrayPool<byte>.Shared.Return(_rented);
            }
        }

        private Span<byte> Reserve(int count)
        {
            if (_length + count > _buffer.Length)
            {
                var grown = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + count));
                _buffer[.._length].CopyTo(grown);
                if (_rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(_rented);
                }

                _rented = grown;
                _buffer = grown;
            }

            var span = _buffer.Slice(_length, count);
            _length += count;
            return span;
        }
    }
}
