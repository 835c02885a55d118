namespace Floodgate.Overrides;

/// <summary>
/// Where overrides live: in process for the memory store, in Redis for the Redis store, so that every replica sees them
/// and they survive a restart. <see cref="TryFind"/> is what a decision calls: a local lookup, never a round trip; the
/// other members are the admin side's.
/// </summary>
public interface IOverrideStore
{
    /// <summary>The subject's override in force, from local memory only; <see langword="false"/> when none (or it lapsed).</summary>
    bool TryFind(string subject, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RateLimitOverride? value);

    /// <summary>Stores <paramref name="value"/> in place of the subject's override, if any, in one atomic write.</summary>
    ValueTask SetAsync(RateLimitOverride value, CancellationToken cancellationToken = default);

    /// <summary>Removes the subject's override; <see langword="false"/> when there was none.</summary>
    ValueTask<bool> RemoveAsync(string subject, CancellationToken cancellationToken = default);

    /// <summary>The subject's override as stored now; <see langword="null"/> when none (or it lapsed).</summary>
    ValueTask<RateLimitOverride?> GetAsync(string subject, CancellationToken cancellationToken = default);

    /// <summary>Up to <paramref name="limit"/> overrides in force, ordered by subject, after <paramref name="after"/> when given.</summary>
    ValueTask<IReadOnlyList<RateLimitOverride>> ListAsync(string? after, int limit, CancellationToken cancellationToken = default);
}
