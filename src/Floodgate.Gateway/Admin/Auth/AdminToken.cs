using System.Security.Cryptography;
using System.Text;

namespace Floodgate.Gateway.Admin.Auth;

/// <summary>One admin bearer token: its name, which the admin log gives every change made with it, and the SHA-256 of its secret.</summary>
internal sealed class AdminToken
{
    private AdminToken(string name, byte[] hash)
    {
        Name = name;
        Hash = hash;
    }

    /// <summary>The token's name, such as <c>ops</c>.</summary>
    public string Name { get; }

    /// <summary>The SHA-256 of the secret: only hashes are compared, so a comparison's time says nothing of the secret's length.</summary>
    internal byte[] Hash { get; }

    /// <summary>A token named <paramref name="name"/> with the secret <paramref name="secret"/>.</summary>
    public static AdminToken Create(string name, string secret)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentException.ThrowIfNullOrEmpty(secret);
        return new AdminToken(name, SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
    }
}

/// <summary>The admin tokens in force. Immutable: a policy reload brings a new set.</summary>
internal sealed class AdminTokenSet
{
    /// <summary>Creates a set.</summary>
    public AdminTokenSet(IReadOnlyList<AdminToken> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        Tokens = tokens;
    }

    /// <summary>No tokens: every admin request is refused.</summary>
    public static AdminTokenSet None { get; } = new([]);

    /// <summary>The tokens.</summary>
    public IReadOnlyList<AdminToken> Tokens { get; }

    /// <summary>
    /// The name of the token <paramref name="presented"/> is; <see langword="null"/> when it is none of them. Every token
    /// is compared, each in constant time over SHA-256 hashes, so the time taken tells neither which token came close nor
    /// how long any secret is.
    /// </summary>
    public string? Match(ReadOnlySpan<char> presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var length = Encoding.UTF8.GetMaxByteCount(presented.Length);
        var bytes = length <= 512 ? stackalloc byte[length] : new byte[length];
        var written = Encoding.UTF8.GetBytes(presented, bytes);
        SHA256.HashData(bytes[..written], hash);
        string? found = null;
        foreach (var token in Tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, token.Hash))
            {
                found ??= token.Name;
            }
        }

        return found;
    }
}
