using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace Floodgate.ApiKeys;

/// <summary>API keys in process, for the memory store: one replica, lost at a restart like the store's counters.</summary>
public sealed class MemoryApiKeyStore : IApiKeyStore
{
    private readonly ConcurrentDictionary<string, ApiKeyEntry> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ApiKeyEntry>.AlternateLookup<ReadOnlySpan<char>> _byId;

    // Writes compare and replace under one lock: an admin path, never a request's.
    private readonly Lock _writes = new();

    /// <summary>Creates an empty store.</summary>
    public MemoryApiKeyStore() => _byId = _keys.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>How many keys are held.</summary>
    public int Count => _keys.Count;

    /// <inheritdoc/>
    public bool TryFind(ReadOnlySpan<char> id, [NotNullWhen(true)] out ApiKeyEntry? entry) => _byId.TryGetValue(id, out entry);

    /// <inheritdoc/>
    public ValueTask<ApiKeyEntry?> FindAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        return ValueTask.FromResult(_keys.TryGetValue(id, out var entry) ? entry : null);
    }

    /// <inheritdoc/>
    public ValueTask<bool> CreateAsync(ApiKeyRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        return ValueTask.FromResult(_keys.TryAdd(record.Id, new ApiKeyEntry(record)));
    }

    /// <inheritdoc/>
    public ValueTask<bool> ReplaceAsync(ApiKeyRecord current, ApiKeyRecord next, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(next);
        if (!string.Equals(current.Id, next.Id, StringComparison.Ordinal))
        {
            throw new ArgumentException("A replacement keeps the key's id.", nameof(next));
        }

        lock (_writes)
        {
            if (!_keys.TryGetValue(current.Id, out var stored) || !ReferenceEquals(stored.Record, current))
            {
                return ValueTask.FromResult(false);
            }

            _keys[next.Id] = new ApiKeyEntry(next, stored.LastUsedAt);
            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc/>
    public ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(id);
        lock (_writes)
        {
            return ValueTask.FromResult(_keys.TryRemove(id, out _));
        }
    }

    /// <inheritdoc/>
    public ValueTask<ApiKeyEntry?> GetAsync(string id, CancellationToken cancellationToken = default) => FindAsync(id, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<ApiKeyEntry>> ListAsync(string? subject, string? after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        IReadOnlyList<ApiKeyEntry> page = [.. _keys.Values
            .Where(e => (subject is null || string.Equals(e.Record.Subject, subject, StringComparison.Ordinal)) && (after is null || string.CompareOrdinal(e.Record.Id, after) > 0))
            .OrderBy(e => e.Record.Id, StringComparer.Ordinal)
            .Take(limit)];
        return ValueTask.FromResult(page);
    }
}
