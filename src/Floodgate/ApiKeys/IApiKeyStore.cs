using System.Diagnostics.CodeAnalysis;

namespace Floodgate.ApiKeys;

/// <summary>
/// Where API keys live: in process beside the memory store, in Redis beside the Redis store (every replica mirrors
/// them). <see cref="TryFind"/> is what verification calls first: a local lookup, never a round trip. The other members
/// are the admin side's, and <see cref="FindAsync"/> the fallback for a key not (yet) held locally.
/// </summary>
public interface IApiKeyStore
{
    /// <summary>The key with id <paramref name="id"/>, from local memory only; <see langword="false"/> when not held here.</summary>
    bool TryFind(ReadOnlySpan<char> id, [NotNullWhen(true)] out ApiKeyEntry? entry);

    /// <summary>
    /// The key with id <paramref name="id"/>: from local memory, else from the store itself (a key created elsewhere a
    /// moment ago). A remote store remembers ids it did not find in a bounded negative cache, so a flood of unknown keys
    /// does not become a flood of store lookups.
    /// </summary>
    ValueTask<ApiKeyEntry?> FindAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Stores a new key; <see langword="false"/> when its id is taken.</summary>
    ValueTask<bool> CreateAsync(ApiKeyRecord record, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces <paramref name="current"/> with <paramref name="next"/> (same id) in one write, only if the stored
    /// record is still <paramref name="current"/>; <see langword="false"/> when it changed or is gone.
    /// </summary>
    ValueTask<bool> ReplaceAsync(ApiKeyRecord current, ApiKeyRecord next, CancellationToken cancellationToken = default);

    /// <summary>Removes the key, which no replica accepts from then on; <see langword="false"/> when there was none.</summary>
    ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>The key as stored now, with its last use; <see langword="null"/> when none.</summary>
    ValueTask<ApiKeyEntry?> GetAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Up to <paramref name="limit"/> keys ordered by id, after <paramref name="after"/> when given, only
    /// <paramref name="subject"/>'s when given.
    /// </summary>
    ValueTask<IReadOnlyList<ApiKeyEntry>> ListAsync(string? subject, string? after, int limit, CancellationToken cancellationToken = default);
}
