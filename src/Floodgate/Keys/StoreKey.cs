using System.Globalization;

namespace Floodgate.Keys;

/// <summary>
/// Where a store keeps one key's state: a 128-bit hash of the rule and the key's parts, and a 128-bit hash of the
/// identity the key belongs to.
/// </summary>
/// <remarks>
/// Hashing makes every key the same small size whatever a client sends, and gives hostile input (braces, colons,
/// 10 KB subjects) no way into a store's key syntax. Checks with the same <see cref="Identity"/> are decided
/// atomically together; a Redis store puts the identity in the key's hash tag so they share a cluster slot.
/// </remarks>
/// <param name="Identity">The hash of the identity: the subject, client IP, claims or headers in the key.</param>
/// <param name="Value">The hash of everything that names the key: rule, algorithm and every key part.</param>
public readonly record struct StoreKey(UInt128 Identity, UInt128 Value)
{
    /// <summary>
    /// Hashes a key built outside the rule model, such as a limiter partition or an Envoy descriptor: keys with the same
    /// <paramref name="identity"/> are decided atomically together and share a Redis cluster slot.
    /// </summary>
    /// <param name="scope">What the key belongs to, such as a rule or descriptor name.</param>
    /// <param name="identity">Who the key counts, such as a subject or an IP.</param>
    /// <param name="qualifier">What else distinguishes the key, such as a route; optional.</param>
    public static StoreKey Create(string scope, string identity, string? qualifier = null)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentNullException.ThrowIfNull(identity);
        return KeyHasher.Hash(scope, identity, qualifier);
    }

    /// <summary>The value as 32 lowercase hex digits.</summary>
    public string ValueHex => Value.ToString("x32", CultureInfo.InvariantCulture);

    /// <summary>The identity as 32 lowercase hex digits.</summary>
    public string IdentityHex => Identity.ToString("x32", CultureInfo.InvariantCulture);

    /// <inheritdoc/>
    public override string ToString() => $"{{{IdentityHex}}}:{ValueHex}";
}
