using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Floodgate.AspNetCore.RateLimitIds;

/// <summary>
/// The verifiable rate-limit id: <c>kid.uid.tag</c>, where <c>uid</c> names the user without revealing them and <c>tag</c>
/// proves the gateway issued it, so an edge (the gateway's, a Cloudflare Worker, a CloudFront Function) can count on it
/// before any token is checked, and nobody without the secret can mint a fresh one. The derivation, exactly
/// (docs/edge.md has test vectors and a JavaScript verifier):
/// <code>
/// enc(s)   = uint32 big-endian length of UTF-8(s) || UTF-8(s)
/// uid      = HMAC-SHA256(secret, "floodgate-rlid-v1" || enc(subject) || enc(claim 1) || ...)[0..16]
/// tag      = HMAC-SHA256(secret, "floodgate-rlid-tag-v1" || enc(kid) || uid)[0..16]
/// id       = kid "." base64url(uid) "." base64url(tag)            (no padding: 22 characters each, canonical)
/// endpoint = base64url(HMAC-SHA256(uid, UTF-8(endpoint class))[0..16])
/// </code>
/// </summary>
public static class RateLimitId
{
    /// <summary>The header that carries the id by default.</summary>
    public const string DefaultHeader = "x-ratelimit-user-id";

    /// <summary>The bytes of <c>uid</c> and of <c>tag</c>.</summary>
    public const int PartBytes = 16;

    /// <summary>The longest key id.</summary>
    public const int MaxKeyIdLength = 32;

    private const int EncodedPart = 22;
    private static readonly System.Buffers.SearchValues<char> Alphabet = System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    private static readonly byte[] UidLabel = "floodgate-rlid-v1"u8.ToArray();
    private static readonly byte[] TagLabel = "floodgate-rlid-tag-v1"u8.ToArray();

    /// <summary>Whether <paramref name="keyId"/> can name a key: 1 to 32 of <c>A-Z a-z 0-9 _ -</c>.</summary>
    public static bool IsValidKeyId(string? keyId) =>
        keyId is { Length: > 0 and <= MaxKeyIdLength } && keyId.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');

    /// <summary>The id of <paramref name="subject"/> (and the values of the id's claims, in order) under the key <paramref name="keyId"/>.</summary>
    /// <param name="secret">The key's secret bytes.</param>
    /// <param name="keyId">The key's id, carried in the id so that a verifier picks the key.</param>
    /// <param name="subject">The validated subject.</param>
    /// <param name="claims">The values of the claims the id is derived from too, in the configured order; an absent claim is empty.</param>
    public static string Create(ReadOnlySpan<byte> secret, string keyId, string subject, params ReadOnlySpan<string?> claims)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(subject);
        if (!IsValidKeyId(keyId))
        {
            throw new ArgumentException($"'{keyId}' is not a key id: 1 to {MaxKeyIdLength} of A-Z a-z 0-9 _ -.", nameof(keyId));
        }

        Span<byte> uid = stackalloc byte[PartBytes];
        Uid(secret, subject, claims, uid);
        Span<byte> tag = stackalloc byte[PartBytes];
        Tag(secret, keyId, uid, tag);
        return $"{keyId}.{Base64Url.EncodeToString(uid)}.{Base64Url.EncodeToString(tag)}";
    }

    /// <summary>The per-endpoint id of <paramref name="id"/> for <paramref name="endpointClass"/>: what an edge counts on to limit one user per endpoint class.</summary>
    /// <exception cref="FormatException"><paramref name="id"/> is not a rate-limit id.</exception>
    public static string ForEndpoint(string id, string endpointClass)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(endpointClass);
        Span<byte> uid = stackalloc byte[PartBytes];
        Span<byte> tag = stackalloc byte[PartBytes];
        if (!TryParse(id, out _, uid, tag))
        {
            throw new FormatException("Not a rate-limit id (kid.uid.tag).");
        }

        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(uid, Encoding.UTF8.GetBytes(endpointClass), mac);
        return Base64Url.EncodeToString(mac[..PartBytes]);
    }

    /// <summary>Splits <paramref name="id"/> into its key id and its decoded <c>uid</c> and <c>tag</c>; allocates nothing.</summary>
    public static bool TryParse(ReadOnlySpan<char> id, out ReadOnlySpan<char> keyId, Span<byte> uid, Span<byte> tag)
    {
        keyId = default;
        var first = id.IndexOf('.');
        if (first <= 0 || first > MaxKeyIdLength || id.Length != first + 2 + (2 * EncodedPart) || id[first + 1 + EncodedPart] != '.')
        {
            return false;
        }

        keyId = id[..first];
        return Decode(id.Slice(first + 1, EncodedPart), uid) && Decode(id.Slice(first + 2 + EncodedPart, EncodedPart), tag);
    }

    /// <summary>Whether <paramref name="tag"/> is the tag of <paramref name="uid"/> under the key: compared in constant time.</summary>
    public static bool VerifyTag(ReadOnlySpan<byte> secret, ReadOnlySpan<char> keyId, ReadOnlySpan<byte> uid, ReadOnlySpan<byte> tag)
    {
        Span<byte> expected = stackalloc byte[PartBytes];
        Tag(secret, keyId, uid, expected);
        return CryptographicOperations.FixedTimeEquals(expected, tag);
    }

    /// <summary>Writes the <c>uid</c> of <paramref name="subject"/> and <paramref name="claims"/> to <paramref name="uid"/> (16 bytes).</summary>
    public static void Uid(ReadOnlySpan<byte> secret, string subject, ReadOnlySpan<string?> claims, Span<byte> uid)
    {
        var length = UidLabel.Length + 4 + Encoding.UTF8.GetByteCount(subject);
        foreach (var claim in claims)
        {
            length += 4 + Encoding.UTF8.GetByteCount(claim ?? string.Empty);
        }

        var message = length <= 512 ? stackalloc byte[length] : new byte[length];
        UidLabel.CopyTo(message);
        var at = Append(message, UidLabel.Length, subject);
        foreach (var claim in claims)
        {
            at = Append(message, at, claim ?? string.Empty);
        }

        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(secret, message, mac);
        mac[..PartBytes].CopyTo(uid);
    }

    private static void Tag(ReadOnlySpan<byte> secret, ReadOnlySpan<char> keyId, ReadOnlySpan<byte> uid, Span<byte> tag)
    {
        Span<byte> message = stackalloc byte[TagLabel.Length + 4 + MaxKeyIdLength + PartBytes];
        TagLabel.CopyTo(message);
        var at = TagLabel.Length;
        BinaryPrimitives.WriteUInt32BigEndian(message[at..], (uint)keyId.Length);
        at += 4;

        // A key id is ASCII (IsValidKeyId), one byte a character.
        at += Encoding.ASCII.GetBytes(keyId, message[at..]);
        uid.CopyTo(message[at..]);
        at += PartBytes;
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(secret, message[..at], mac);
        mac[..PartBytes].CopyTo(tag);
    }

    private static int Append(Span<byte> message, int at, string value)
    {
        var written = Encoding.UTF8.GetBytes(value, message[(at + 4)..]);
        BinaryPrimitives.WriteUInt32BigEndian(message[at..], (uint)written);
        return at + 4 + written;
    }

    /// <summary>
    /// Decodes 22 base64url characters into 16 bytes, accepting only the canonical form: the last character carries 4
    /// unused bits, which must be zero, or one id would have 16 spellings, each a budget of its own wherever ids are
    /// counted as text.
    /// </summary>
    private static bool Decode(ReadOnlySpan<char> text, Span<byte> into)
    {
        // The decoder throws on characters outside the alphabet rather than answering false.
        if (text.ContainsAnyExcept(Alphabet) || text[^1] is not ('A' or 'Q' or 'g' or 'w'))
        {
            return false;
        }

        return Base64Url.TryDecodeFromChars(text, into, out var written) && written == PartBytes;
    }
}
