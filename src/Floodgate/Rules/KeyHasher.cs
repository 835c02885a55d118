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
/// A one-part key (a subject, an IP) is hashed in place with a seed precomputed from the rule and algorithm. Longer
/// keys are written, tagged and length-prefixed, into a stack buffer and hashed in one shot: XXH3's one-shot path on
/// a short input costs about ten nanoseconds, its incremental state ten times that. A part too large for the stack
/// (a hostile 10 KB subject) moves the buffer to the array pool. The identity hash depends only on the identity
/// parts, so every rule keyed on alice groups with every other.
/// </remarks>
[SkipLocalsInit]
internal static class KeyHasher
{
    // Room for a rule name, a subject or IP and a route without touching the heap.
    private const int StackBytes = 256;

    // Seeds keep the hashes of different roles apart: the identity of a subject is one value whatever rule keys on it.
    private const long IdentitySeed = 0x46_6C_6F_6F_64_67_61_74; // "Floodgat"
    private const long MultiIdentitySeed = IdentitySeed ^ 0x7F;

    // The tag of a subject that stands for an anonymous caller (IAnonymousSubject): outside every KeyPartKind, so no
    // validated subject, claim or header, whatever its text, hashes as an anonymous caller does.
    private const byte AnonymousSubjectTag = 0x80;

    /// <summary>The seed of a rule's keys under one algorithm, so rules and algorithms never share state.</summary>
    public static long Seed(string scope, LimitAlgorithm algorithm) =>
        (long)XxHash3.HashToUInt64(MemoryMarshal.AsBytes(scope.AsSpan()), (long)algorithm + 1);

    /// <summary>Builds the key; <see langword="false"/> when the request lacks a part, so the rule does not apply.</summary>
    public static bool TryBuild(RateLimitRule rule, Limit limit, IRequestContext request, int ipv6Prefix, out StoreKey key)
    {
        var seed = rule.KeySeed(limit.Algorithm);
        var parts = rule.Key;
        Span<byte> address = stackalloc byte[16];
        if (parts.Count == 1)
        {
            // The common key, one subject or one IP: hashed in place, nothing copied.
            var part = parts[0];
            if (!TryRead(rule, part, request, ipv6Prefix, address, out var bytes, out var tag))
            {
                key = default;
                return false;
            }

            var value = XxHash128.HashToUInt128(bytes, seed ^ tag);
            key = new StoreKey(part.IsIdentity ? XxHash128.HashToUInt128(bytes, IdentitySeed ^ tag) : value, value);
            return true;
        }

        var identity = new KeyBuffer(stackalloc byte[StackBytes]);
        var whole = new KeyBuffer(stackalloc byte[StackBytes]);
        try
        {
            scoped ReadOnlySpan<byte> firstIdentity = default;
            var firstIdentityTag = 0L;
            var identities = 0;
            for (var i = 0; i < parts.Count; i++)
            {
                var part = parts[i];
                if (!TryRead(rule, part, request, ipv6Prefix, address, out var bytes, out var tag))
                {
                    key = default;
                    return false;
                }

                whole.Append(tag, bytes);
                if (part.IsIdentity)
                {
                    if (identities++ == 0)
                    {
                        firstIdentity = bytes;
                        firstIdentityTag = tag;
                    }

                    identity.Append(tag, bytes);
                }
            }

            var valueHash = whole.Hash(seed);
            var identityHash = identities switch
            {
                0 => valueHash,
                1 => XxHash128.HashToUInt128(firstIdentity, IdentitySeed ^ firstIdentityTag),
                _ => identity.Hash(MultiIdentitySeed),
            };
            key = new StoreKey(identityHash, valueHash);
            return true;
        }
        finally
        {
            identity.Dispose();
            whole.Dispose();
        }
    }

    /// <summary>
    /// Hashes an identity under a precomputed <see cref="Seed"/>, for callers that key many identities in one scope: the
    /// scope is hashed once, not per key.
    /// </summary>
    public static StoreKey Hash(long seed, string identity)
    {
        var identityBytes = MemoryMarshal.AsBytes(identity.AsSpan());
        return new StoreKey(XxHash128.HashToUInt128(identityBytes, IdentitySeed), XxHash128.HashToUInt128(identityBytes, seed));
    }

    /// <summary>Hashes a key outside the rule model: a scope (such as a limiter or descriptor name), an identity and a qualifier.</summary>
    public static StoreKey Hash(string scope, string identity, string? qualifier)
    {
        var seed = (long)XxHash3.HashToUInt64(MemoryMarshal.AsBytes(scope.AsSpan()));
        var identityBytes = MemoryMarshal.AsBytes(identity.AsSpan());
        var identityHash = XxHash128.HashToUInt128(identityBytes, IdentitySeed);
        if (qualifier is null)
        {
            return new StoreKey(identityHash, XxHash128.HashToUInt128(identityBytes, seed));
        }

        var whole = new KeyBuffer(stackalloc byte[StackBytes]);
        try
        {
            whole.Append(0xF2, identityBytes);
            whole.Append(0xF3, MemoryMarshal.AsBytes(qualifier.AsSpan()));
            return new StoreKey(identityHash, whole.Hash(seed));
        }
        finally
        {
            whole.Dispose();
        }
    }

    /// <summary>Reads a part's bytes, and the tag that keeps them apart from other parts': the part's kind, or <see cref="AnonymousSubjectTag"/>.</summary>
    private static bool TryRead(RateLimitRule rule, KeyPart part, IRequestContext request, int ipv6Prefix, Span<byte> address, out ReadOnlySpan<byte> bytes, out byte tag)
    {
        tag = part.Kind == KeyPartKind.Subject && request is IAnonymousSubject { IsAnonymousSubject: true } ? AnonymousSubjectTag : (byte)part.Kind;
        if (part.Kind == KeyPartKind.ClientIp)
        {
            if (request.ClientIp is not { } ip)
            {
                bytes = default;
                return false;
            }

            bytes = address[..WriteAddress(ip, ipv6Prefix, address)];
            return true;
        }

        var text = part.Kind switch
        {
            KeyPartKind.Subject => request.Subject,
            KeyPartKind.Claim => request.GetClaim(part.Name!),
            KeyPartKind.Header => request.GetHeader(part.Name!),
            KeyPartKind.Route => rule.Match.RouteKey ?? rule.Match.Route?.Template ?? request.RouteTemplate ?? request.Path,
            KeyPartKind.Method => request.Method,
            KeyPartKind.Path => request.Path,
            KeyPartKind.Host => request.Host,
            KeyPartKind.Plan => request.Plan ?? rule.DefaultPlan ?? string.Empty,
            _ => part.Name,
        };
        bytes = text is null ? default : MemoryMarshal.AsBytes(text.AsSpan());
        return text is not null;
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

        public void Append(byte tag, ReadOnlySpan<byte> bytes)
        {
            var span = Reserve(5 + bytes.Length);
            span[0] = tag;
            BinaryPrimitives.WriteInt32LittleEndian(span[1..], bytes.Length);
            bytes.CopyTo(span[5..]);
        }

        public readonly UInt128 Hash(long seed) => XxHash128.HashToUInt128(_buffer[.._length], seed);

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
