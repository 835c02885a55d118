using Floodgate.Stores;

namespace Floodgate.Redis;

// Forgetting one key's state: the admin side's reset, one DEL.
public sealed partial class RedisStore : IResettableStore
{
    /// <inheritdoc/>
    /// <remarks>
    /// One <c>DEL</c> of the key, and this process's cached denial of it is forgotten. Another replica's cached denial
    /// (<see cref="RedisStoreOptions.OverLimitCache"/>) may still answer until the time it said to retry after.
    /// </remarks>
    public async ValueTask<bool> ResetAsync(RateLimitCheck check, CancellationToken cancellationToken = default)
    {
        var key = RedisKeys.For(_prefix, check.Key, check.Limit.Algorithm);
        _cache?.Forget(check.Key);
        var connection = Current ?? throw NoMaster();
        return await connection.GetDatabase().KeyDeleteAsync(key).WaitAsync(cancellationToken).ConfigureAwait(false);
    }
}
