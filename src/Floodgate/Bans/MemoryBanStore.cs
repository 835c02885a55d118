using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace Floodgate.Bans;

/// <summary>Bans in process, for the memory store: one replica, lost at a restart like the store's counters.</summary>
public sealed class MemoryBanStore : IBanStore
{
    /// <summary>The most bans a store holds by default.</summary>
    public const int DefaultMaxBans = 10_000;

    private readonly BanTable _table = new();
    private readonly Lock _writeLock = new();
    private readonly TimeProvider _time;

    /// <summary>Creates an empty store of at most <paramref name="maxBans"/> bans; <paramref name="timeProvider"/> says when a ban lapses.</summary>
    public MemoryBanStore(TimeProvider? timeProvider = null, int maxBans = DefaultMaxBans)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBans, 1);
        _time = timeProvider ?? TimeProvider.System;
        MaxBans = maxBans;
    }

    /// <inheritdoc/>
    public int MaxBans { get; }

    /// <summary>How many bans are held, lapsed ones not yet pruned included.</summary>
    public int Count => _table.Count;

    /// <inheritdoc/>
    public bool TryFind(IPAddress address, [NotNullWhen(true)] out Ban? ban) => _table.TryFind(address, _time.GetUtcNow(), out ban);

    /// <inheritdoc/>
    public bool TryFindSubject(string subject, [NotNullWhen(true)] out Ban? ban) => _table.TryFindSubject(subject, _time.GetUtcNow(), out ban);

    /// <inheritdoc/>
    public ValueTask<bool> AddAsync(Ban ban, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ban);
        lock (_writeLock)
        {
            if (_table.Count >= MaxBans && _table.Get(ban.Kind, ban.Target) is null && _table.Current(_time.GetUtcNow()).Count >= MaxBans)
            {
                return ValueTask.FromResult(false);
            }

            _table.Set(ban);
            return ValueTask.FromResult(true);
        }
    }

    /// <inheritdoc/>
    public ValueTask<Ban?> RemoveAsync(BanKind kind, string target, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        lock (_writeLock)
        {
            var held = _table.Get(kind, target);
            var removed = held is not null && _table.Remove(held) && !held.IsExpired(_time.GetUtcNow()) ? held : null;
            return ValueTask.FromResult(removed);
        }
    }

    /// <inheritdoc/>
    public ValueTask<IReadOnlyList<Ban>> ListAsync(int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        IReadOnlyList<Ban> page = [.. _table.Current(_time.GetUtcNow()).OrderByDescending(b => b.CreatedAt).ThenBy(b => b.Id, StringComparer.Ordinal).Take(limit)];
        return ValueTask.FromResult(page);
    }
}
