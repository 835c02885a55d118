using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Floodgate.Limits;

namespace Floodgate.Keys;

/// <summary>Hashes what names a key into a <see cref="StoreKey"/> without allocating.</summary>
/// <remarks>
/// A one-part key (a subject, an IP) is hashed in place (<see cref="HashPart"/>) with a seed precomputed from the scope
/// and algorithm. Longer keys are written, tagged and length-prefixed, into a stack buffer (<see cref="KeyBuilder"/>)
/// and hashed in one shot: XXH3's one-shot path on a short input costs about ten nanoseconds, its incremental state ten
/// times that. A part too large for the stack (a hostile 10 KB subject) moves the buffer to the array pool. The identity
/// hash depends only on the identity parts, so every key of alice groups with every other, whatever its scope.
/// </remarks>
[SkipLocalsInit]
internal static class KeyHasher
{
    /// <summary>Room for a rule name, a subject or IP and a route without touching the heap.</summary>
    public const int StackBytes = 256;

    // Seeds keep the hashes of different roles apart: the identity of a subject is one value whatever rule keys on it.
    internal const long IdentitySeed = 0x46_6C_6F_6F_64_67_61_74; // "Floodgat"
    internal const long MultiIdentitySeed = IdentitySeed ^ 0x7F;

    /// <summary>The seed of a scope's keys under one algorithm, so scopes (rules) and algorithms never share state.</summary>
    public static long Seed(string scope, LimitAlgorithm algorithm) =>
        (long)XxHash3.HashToUInt64(MemoryMarshal.AsBytes(scope.AsSpan()), (long)algorithm + 1);

    /// <summary>
    /// The key of one part, hashed in place, nothing copied: <paramref name="tag"/> keeps the part apart from parts of
    /// other kinds with the same bytes; an identity part is also the key's identity, otherwise the key is its own identity.
    /// </summary>
    public static StoreKey HashPart(long seed, byte tag, ReadOnlySpan<byte> bytes, bool isIdentity)
    {
        var value = XxHash128.HashToUInt128(bytes, seed ^ tag);
        return new StoreKey(isIdentity ? XxHash128.HashToUInt128(bytes, IdentitySeed ^ tag) : value, value);
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
}

/// <summary>
/// The key of several parts: each part is appended, tagged and length-prefixed, to the whole key and, when it names who
/// is calling, to the identity. Call <see cref="Dispose"/> in a <c>finally</c> (not <c>using</c>, which would append to
/// a copy): a part too large for the stack buffers rents from the array pool.
/// </summary>
/// <param name="identityBuffer">Stack space for the identity parts, <see cref="KeyHasher.StackBytes"/> long.</param>
/// <param name="wholeBuffer">Stack space for every part, <see cref="KeyHasher.StackBytes"/> long.</param>
internal ref struct KeyBuilder(Span<byte> identityBuffer, Span<byte> wholeBuffer)
{
    private KeyBuffer _identity = new(identityBuffer);
    private KeyBuffer _whole = new(wholeBuffer);
    private int _identities;

    /// <summary>Appends a part; <paramref name="tag"/> keeps it apart from parts of other kinds with the same bytes.</summary>
    public void Append(byte tag, ReadOnlySpan<byte> bytes, bool isIdentity)
    {
        _whole.Append(tag, bytes);
        if (isIdentity)
        {
            _identities++;
            _identity.Append(tag, bytes);
        }
    }

    /// <summary>
    /// The key: every part hashed under <paramref name="seed"/>; its identity is the one identity part hashed as
    /// <see cref="KeyHasher.HashPart"/> hashes it (so it groups with one-part keys of the same identity), the identity
    /// parts together, or the key itself when no part is an identity.
    /// </summary>
    public readonly StoreKey ToKey(long seed)
    {
        var value = _whole.Hash(seed);
        var identity = _identities switch
        {
            0 => value,
            1 => _identity.HashOnlyPart(KeyHasher.IdentitySeed),
            _ => _identity.Hash(KeyHasher.MultiIdentitySeed),
        };
        return new StoreKey(identity, value);
    }

    /// <summary>Returns what was rented from the array pool.</summary>
    public readonly void Dispose()
    {
        _identity.Dispose();
        _whole.Dispose();
    }
}

/// <summary>Tagged, length-prefixed parts, so ("ab","c") and ("a","bc") differ; on the stack unless too large.</summary>
internal ref struct KeyBuffer(Span<byte> initial)
{
    private const int HeaderBytes = 5;
    private Span<byte> _buffer = initial;
    private byte[]? _rented;
    private int _length;

    public void Append(byte tag, ReadOnlySpan<byte> bytes)
    {
        var span = Reserve(HeaderBytes + bytes.Length);
        span[0] = tag;
        BinaryPrimitives.WriteInt32LittleEndian(span[1..], bytes.Length);
        bytes.CopyTo(span[HeaderBytes..]);
    }

    public readonly UInt128 Hash(long seed) => XxHash128.HashToUInt128(_buffer[.._length], seed);

    /// <summary>The only part appended, hashed alone under <paramref name="seed"/> XOR its tag, as a one-part key hashes it.</summary>
    public readonly UInt128 HashOnlyPart(long seed) => XxHash128.HashToUInt128(_buffer[HeaderBytes.._length], seed ^ _buffer[0]);

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
