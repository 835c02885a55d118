using System.Security.Cryptography;

namespace Floodgate.ApiKeys;

/// <summary>
/// What a store keeps of an API key: never the secret, only its hash, and whom the key names (subject, account, plan),
/// with its times. Immutable: creating, rotating and revoking each store a new record in one write.
/// </summary>
public sealed class ApiKeyRecord
{
    /// <summary>The longest subject or account a key may name.</summary>
    public const int MaxNameLength = 256;

    private readonly byte[] _hash;
    private readonly byte[]? _previousHash;

    /// <summary>Creates a record.</summary>
    /// <param name="id">The key's id (<see cref="ApiKeySecret.IsId"/>).</param>
    /// <param name="hash">The SHA-256 hash of the key (<see cref="ApiKeySecret.Hash(string)"/>).</param>
    /// <param name="subject">The subject the key is, for every tier, exactly as a token's subject.</param>
    /// <param name="account">The account the subject belongs to, a claim rules may key on; <see langword="null"/> for none.</param>
    /// <param name="plan">The key's plan; <see langword="null"/> for the default plan.</param>
    /// <param name="createdAt">When the key was created.</param>
    /// <param name="expiresAt">When it stops being valid; <see langword="null"/> for never.</param>
    /// <param name="previousHash">After a rotation, the hash of the key it replaced; <see langword="null"/> otherwise.</param>
    /// <param name="previousValidUntil">Until when the replaced key stays valid (the grace period's end).</param>
    /// <param name="rotatedAt">When it was last rotated; <see langword="null"/> if never.</param>
    /// <exception cref="ArgumentException">A value is empty, too long or of the wrong form.</exception>
    public ApiKeyRecord(string id, byte[] hash, string subject, string? account, string? plan, DateTimeOffset createdAt, DateTimeOffset? expiresAt = null, byte[]? previousHash = null, DateTimeOffset? previousValidUntil = null, DateTimeOffset? rotatedAt = null)
    {
        if (!ApiKeySecret.IsId(id))
        {
            throw new ArgumentException($"'{id}' is not a key id.", nameof(id));
        }

        ArgumentNullException.ThrowIfNull(hash);
        if (hash.Length != ApiKeySecret.HashLength || previousHash is { Length: not ApiKeySecret.HashLength })
        {
            throw new ArgumentException($"A key's hash is {ApiKeySecret.HashLength} bytes.", nameof(hash));
        }

        CheckName(subject, nameof(subject));
        if (account is not null)
        {
            CheckName(account, nameof(account));
        }

        if (plan is { Length: 0 })
        {
            throw new ArgumentException("The plan is empty; give a plan's name, or null for the default plan.", nameof(plan));
        }

        Id = id;
        _hash = hash;
        Subject = subject;
        Account = account;
        Plan = plan;
        CreatedAt = createdAt;
        ExpiresAt = expiresAt;
        _previousHash = previousHash;
        PreviousValidUntil = previousHash is null ? null : previousValidUntil;
        RotatedAt = rotatedAt;
    }

    /// <summary>The key's id: not secret, it names the key in the admin API and in logs.</summary>
    public string Id { get; }

    /// <summary>The SHA-256 hash of the key.</summary>
    public ReadOnlySpan<byte> Hash => _hash;

    /// <summary>The subject.</summary>
    public string Subject { get; }

    /// <summary>The account, if any.</summary>
    public string? Account { get; }

    /// <summary>The plan; <see langword="null"/> for the default plan.</summary>
    public string? Plan { get; }

    /// <summary>When the key was created.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>When the key stops being valid; <see langword="null"/> for never.</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>After a rotation, the hash of the replaced key, valid until <see cref="PreviousValidUntil"/>.</summary>
    public ReadOnlySpan<byte> PreviousHash => _previousHash;

    /// <summary>Whether a replaced key is held, valid or not.</summary>
    public bool HasPrevious => _previousHash is not null;

    /// <summary>Until when the replaced key is valid; <see langword="null"/> without one.</summary>
    public DateTimeOffset? PreviousValidUntil { get; }

    /// <summary>When the key was last rotated; <see langword="null"/> if never.</summary>
    public DateTimeOffset? RotatedAt { get; }

    /// <summary>Whether the key has expired at <paramref name="now"/>.</summary>
    public bool IsExpired(DateTimeOffset now) => ExpiresAt is { } at && at <= now;

    /// <summary>
    /// Whether a key whose hash is <paramref name="hash"/> is this one and valid at <paramref name="now"/>: the current
    /// key, or the replaced one within its grace period, compared in constant time.
    /// </summary>
    public ApiKeyCheck Check(ReadOnlySpan<byte> hash, DateTimeOffset now)
    {
        var current = CryptographicOperations.FixedTimeEquals(hash, _hash);
        var previous = _previousHash is not null && CryptographicOperations.FixedTimeEquals(hash, _previousHash);
        if (!current && !(previous && PreviousValidUntil is { } until && now < until))
        {
            return ApiKeyCheck.Mismatch;
        }

        return IsExpired(now) ? ApiKeyCheck.Expired : ApiKeyCheck.Valid;
    }

    /// <summary>This key rotated to <paramref name="hash"/>: the key in force now stays valid for <paramref name="grace"/>.</summary>
    public ApiKeyRecord Rotated(byte[] hash, DateTimeOffset now, TimeSpan grace) =>
        new(Id, hash, Subject, Account, Plan, CreatedAt, ExpiresAt, grace > TimeSpan.Zero ? _hash : null, grace > TimeSpan.Zero ? now + grace : null, now);

    private static void CheckName(string value, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(value, name);
        if (value.Length > MaxNameLength)
        {
            throw new ArgumentException($"The {name} is {value.Length} characters; at most {MaxNameLength}.", name);
        }
    }
}

/// <summary>Whether a presented key matched a record.</summary>
public enum ApiKeyCheck
{
    /// <summary>The key is the record's, valid now.</summary>
    Valid,

    /// <summary>The key is not the record's (nor its replaced key within the grace period).</summary>
    Mismatch,

    /// <summary>The key is the record's, but it has expired.</summary>
    Expired,
}
