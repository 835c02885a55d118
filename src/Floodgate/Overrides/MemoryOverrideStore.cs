using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace Floodgate.Overrides;

/// <summary>Overrides in process, for the memory store: one replica, lost at a restart like the store's counters.</summary>
public sealed class MemoryOverrideStore : IOverrideStore
{
    private readonly ConcurrentDictionary<string, RateLimitOverride> _overrides = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    // Set when the first account's override is stored, never cleared: until then no decision reads the account claim.
    private volatile bool _hasAccounts;

    /// <summary>Creates an empty store; <paramref name="timeProvider"/> says when an override lapses.</summary>
    public MemoryOverrideStore(TimeProvider? timeProvider = null) => _time = timeProvider ?? TimeProvider.System;

    /// <summary>How many overrides are held, lapsed ones not yet removed included.</summary>
    public int Count => _overrides.Count;

    /// <inheritdoc/>
    public bool TryFind(string subject, [NotNullWhen(true)] out RateLimitOverride? value)
    {
        if (_overrides.TryGetValue(subject, out value))
        {
            if (value.ExpiresAt is null || !value.IsExpired(_time.GetUtcNow()))
            {
                return true;
            }

            // Lapsed: removed if still the same override, so the dictionary does not keep what no one reads.
            _overrides.TryRemove(new KeyValuePair<string, RateLimitOverride>(subject, value));
            value = null;
        }

        return false;
    }

    /// <inheritdoc/>
    public bool HasAccountOverrides => _hasAccounts;

    /// <inheritdoc/>
    public bool TryFindAccount(string account, [NotNullWhen(true)] out RateLimitOverride? value)
    {
        // The account's key built on the stack and looked up as a span: no allocation per request.
        Span<char> key = stackalloc char[RateLimitOverride.AccountKeyPrefix.Length + RateLimitOverride.MaxSubjectLength];
        var length = RateLimitOverride.WriteAccountKey(account, key);
        if (length < 0 || !_overrides.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(key[..length], out value))
        {
            value = null;
            return false;
        }

        return TryFind(value.Key, out value);
    }

    /// <inheritdoc/>
    public ValueTask SetAsync(RateLimitOverride value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        _hasAccounts |= value.IsAccount;
        _overrides[value.Key] = value;
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask<bool> RemoveAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        var removed = _overrides.TryRemove(subject, out var value) && !value.IsExpired(_time.GetUtcNow());
        return ValueTask.FromResult(removed);
    }

    /// <inheritdoc/>
    public ValueTask<RateLimitOverride?> GetAsync(string subject, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        return ValueTask.FromResult(TryFind(subject, out var value) ? value : null);
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<RateLimitOverride>> ListAsync(string? after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var now = _time.GetUtcNow();
        IReadOnlyList<RateLimitOverride> page = [.. _overrides.Values
            .Where(o => !o.IsExpired(now) && (after is null || string.CompareOrdinal(o.Key, after) > 0))
            .OrderBy(o => o.Key, StringComparer.Ordinal)
            .Take(limit)];
        return ValueTask.FromResult(page);
    }
}
