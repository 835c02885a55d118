using System.Security.Cryptography;
using System.Text;

namespace Floodgate.ApiKeys;

/// <summary>
/// The form of an API key: <c>{prefix}{id}_{secret}</c>, such as <c>fg_live_k3v9x0m2q7ab_…</c>. The prefix says what
/// the string is (and lets a secret scanner find it), the id names the key's record without being secret, and the
/// secret is 32 random base62 characters (about 190 bits). A store keeps only the SHA-256 hash of the whole key: a
/// slow hash adds nothing to a secret of that entropy, and verification stays one hash.
/// </summary>
public static class ApiKeySecret
{
    /// <summary>The prefix keys get unless another is configured.</summary>
    public const string DefaultPrefix = "fg_live_";

    /// <summary>The length of a key's id.</summary>
    public const int IdLength = 12;

    /// <summary>The length of a key's secret part.</summary>
    public const int SecretLength = 32;

    /// <summary>The longest prefix a key may have.</summary>
    public const int MaxPrefixLength = 32;

    /// <summary>The length of a key's hash, in bytes.</summary>
    public const int HashLength = SHA256.HashSizeInBytes;

    private const string IdAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
    private const string SecretAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    private static readonly System.Buffers.SearchValues<char> IdChars = System.Buffers.SearchValues.Create(IdAlphabet);
    private static readonly System.Buffers.SearchValues<char> SecretChars = System.Buffers.SearchValues.Create(SecretAlphabet);

    /// <summary>Whether <paramref name="prefix"/> can begin keys: 1 to 32 ASCII letters, digits and underscores.</summary>
    public static bool IsValidPrefix(string? prefix) =>
        prefix is { Length: > 0 and <= MaxPrefixLength } && prefix.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    /// <summary>A new random id.</summary>
    public static string NewId() => RandomNumberGenerator.GetString(IdAlphabet, IdLength);

    /// <summary>A new key for <paramref name="id"/>: the text to hand out once, and the hash to store.</summary>
    /// <exception cref="ArgumentException">The prefix or the id is not of the key form.</exception>
    public static (string Key, byte[] Hash) NewKey(string prefix, string id)
    {
        if (!IsValidPrefix(prefix))
        {
            throw new ArgumentException($"'{prefix}' is not a key prefix: 1 to {MaxPrefixLength} ASCII letters, digits and underscores.", nameof(prefix));
        }

        if (!IsId(id))
        {
            throw new ArgumentException($"'{id}' is not a key id: {IdLength} lower-case letters and digits.", nameof(id));
        }

        var key = string.Concat(prefix, id, "_", RandomNumberGenerator.GetString(SecretAlphabet, SecretLength));
        return (key, Hash(key));
    }

    /// <summary>
    /// The id of <paramref name="key"/> when it has the key form with <paramref name="prefix"/>; <see langword="false"/>
    /// for anything else, which then costs no lookup.
    /// </summary>
    public static bool TryReadId(ReadOnlySpan<char> key, string prefix, out ReadOnlySpan<char> id)
    {
        id = default;
        if (key.Length != prefix.Length + IdLength + 1 + SecretLength || !key.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = key[prefix.Length..];
        if (rest[IdLength] != '_' || rest[..IdLength].ContainsAnyExcept(IdChars) || rest[(IdLength + 1)..].ContainsAnyExcept(SecretChars))
        {
            return false;
        }

        id = rest[..IdLength];
        return true;
    }

    /// <summary>Whether <paramref name="id"/> is a key id.</summary>
    public static bool IsId(ReadOnlySpan<char> id) => id.Length == IdLength && !id.ContainsAnyExcept(IdChars);

    /// <summary>The SHA-256 hash of <paramref name="key"/>'s UTF-8 bytes, the only form a store keeps.</summary>
    public static byte[] Hash(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var hash = new byte[HashLength];
        Hash(key, hash);
        return hash;
    }

    /// <summary>Writes the SHA-256 hash of <paramref name="key"/>'s UTF-8 bytes into <paramref name="hash"/>; a key of the key form allocates nothing.</summary>
    public static void Hash(ReadOnlySpan<char> key, Span<byte> hash)
    {
        // A key is short ASCII (at most 77 characters): its bytes fit on the stack. Longer text is hashed all the same.
        if (key.Length > 85)
        {
            SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString()), hash);
            return;
        }

        Span<byte> bytes = stackalloc byte[256];
        var count = Encoding.UTF8.GetBytes(key, bytes);
        SHA256.HashData(bytes[..count], hash);
    }
}
