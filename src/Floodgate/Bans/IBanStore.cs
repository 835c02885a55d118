using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace Floodgate.Bans;

/// <summary>
/// Where bans live: in process for the memory store, in Redis for the Redis store (every replica sees them). The
/// lookups are what a request calls: local memory only, never a round trip, allocation free. The others are the admin
/// side's and the edge rules' when they start a ban.
/// </summary>
/// <remarks>
/// The set is bounded (<see cref="MaxBans"/>) and lapsed bans are pruned as they are read, so listing the current bans
/// costs at most that many entries, never a scan of the rate limit keys.
/// </remarks>
public interface IBanStore
{
    /// <summary>The most bans held at once; a ban added beyond it is refused (<see cref="AddAsync"/> answers <see langword="false"/>).</summary>
    int MaxBans { get; }

    /// <summary>The ban in force on <paramref name="address"/>, by its own address or a network holding it, from local memory.</summary>
    bool TryFind(IPAddress address, [NotNullWhen(true)] out Ban? ban);

    /// <summary>The ban in force on <paramref name="subject"/>, from local memory.</summary>
    bool TryFindSubject(string subject, [NotNullWhen(true)] out Ban? ban);

    /// <summary>Stores <paramref name="ban"/> in place of any on the same target; <see langword="false"/> when the store is full.</summary>
    ValueTask<bool> AddAsync(Ban ban, CancellationToken cancellationToken = default);

    /// <summary>Removes the ban on <paramref name="target"/> (canonical, <see cref="Ban.TryCanonical"/>); the ban removed, or <see langword="null"/> when none was in force.</summary>
    ValueTask<Ban?> RemoveAsync(BanKind kind, string target, CancellationToken cancellationToken = default);

    /// <summary>Up to <paramref name="limit"/> bans in force, the latest set first; lapsed ones are pruned on the way.</summary>
    ValueTask<IReadOnlyList<Ban>> ListAsync(int limit, CancellationToken cancellationToken = default);
}
