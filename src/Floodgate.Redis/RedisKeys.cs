using System.Buffers.Binary;
using System.Buffers.Text;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// Spells a <see cref="StoreKey"/> as a Redis key: <c>&lt;prefix&gt;:{&lt;identity&gt;}:&lt;value&gt;</c>, with the
/// identity as the cluster hash tag.
/// </summary>
/// <remarks>
/// The identity tag is the low 64 bits of the identity hash and the value the full 128-bit key hash, both in unpadded
/// base64url (11 and 22 characters), so a key is 38 bytes plus the prefix whatever the client sent. Two distinct keys
/// collide only if their 128-bit value hashes and 64-bit identity tags both collide; among a billion keys the odds are
/// below 10^-20. Two identities whose 64-bit tags collide (about 3 × 10^-2 among 10^9 identities) merely share a
/// cluster slot. Concurrency keys end in <c>:l</c> and sliding-log keys in <c>:g</c>, so a sorted set or a list never meets a string of the same name. (Until
/// 2026-11-23 they ended in <c>:c</c> and held no sum of their leases' permits; the store no longer reads those.)
/// </remarks>
internal static class RedisKeys
{
    public static RedisKey For(string prefix, in StoreKey key, LimitAlgorithm algorithm)
    {
        // A sorted set of leases ends in ':l', a list of entry times (sliding log) in ':g'.
        var suffix = algorithm switch
        {
            LimitAlgorithm.Concurrency => (byte)'l',
            LimitAlgorithm.SlidingLog => (byte)'g',
            _ => (byte)0,
        };
        var length = prefix.Length + 2 + 11 + 2 + 22 + (suffix != 0 ? 2 : 0);
        var bytes = new byte[length];
        var span = bytes.AsSpan();
        var at = 0;
        for (var i = 0; i < prefix.Length; i++)
        {
            span[at++] = (byte)prefix[i];
        }

        span[at++] = (byte)':';
        span[at++] = (byte)'{';
        Span<byte> raw = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(raw, (ulong)key.Identity);
        Base64Url.EncodeToUtf8(raw[..8], span[at..], out _, out var written);
        at += written;
        span[at++] = (byte)'}';
        span[at++] = (byte)':';
        BinaryPrimitives.WriteUInt128LittleEndian(raw, key.Value);
        Base64Url.EncodeToUtf8(raw, span[at..], out _, out written);
        at += written;
        if (suffix != 0)
        {
            span[at++] = (byte)':';
            span[at++] = suffix;
        }

        return bytes;
    }
}
