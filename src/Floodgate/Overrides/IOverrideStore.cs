namespace Floodgate.Overrides;

/// <summary>
/// Where overrides live: in process for the memory store, in Redis for the Redis store, so that every replica sees them
/// and they survive a restart. <see cref="TryFind"/> is what a decision calls: a local lookup, never a round trip; the
/// other members are the admin side's.
/// </summary>
public interface IOverrideStore
{
    /// <summary>
    /// The override in force under <paramref name="subject"/> (a subject, or an account's <see cref="RateLimitOverride.Key"/>),
    /// from local memory only; <see langword="false"/> when none (or it lapsed).
    /// </summary>
    bool TryFind(string subject, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RateLimitOverride? value);

    /// <summary>
    /// Whether any account's override may be stored: while none is, a decision does not read the request's account
    /// claim at all. <see langword="true"/> unless the store knows better.
    /// </summary>
    bool HasAccountOverrides => true;

    /// <summary>
    /// The override in force for <paramref name="account"/> (<see cref="RateLimitOverride.ForAccount"/>), found locally
    /// as <see cref="TryFind"/> does; the stores given here look it up without allocating.
    /// </summary>
    bool TryFindAccount(string account, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RateLimitOverride? value) =>
        TryFind(RateLimitOverride.AccountKey(account), out value);

    /// <summary>Stores <paramref name="value"/> in place of the override under its <see cref="RateLimitOverride.Key"/>, if any, in one atomic write.</summary>
    ValueTask SetAsync(RateLimitOverride value, CancellationToken cancellationToken = default);

    /// <summary>Removes the override under <paramref name="subject"/> (a subject, or an account's key); <see langword="false"/> when there was none.</summary>
    ValueTask<bool> RemoveAsync(string subject, CancellationToken cancellationToken = default);

    /// <summary>The override under <paramref name="subject"/> (a subject, or an account's key) as stored now; <see langword="null"/> when none (or it lapsed).</summary>
    ValueTask<RateLimitOverride?> GetAsync(string subject, CancellationToken cancellationToken = default);

    /// <summary>Up to <paramref name="limit"/> overrides in force, ordered by <see cref="RateLimitOverride.Key"/> (accounts' first), after the key <paramref name="after"/> when given.</summary>
    ValueTask<IReadOnlyList<RateLimitOverride>> ListAsync(string? after, int limit, CancellationToken cancellationToken = default);
}
