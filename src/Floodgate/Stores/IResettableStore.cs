namespace Floodgate.Stores;

/// <summary>
/// A store that can forget one key's state: the admin side's "reset", never called on the decision path. The memory and
/// Redis stores implement it; a store that does not is left as it is.
/// </summary>
public interface IResettableStore
{
    /// <summary>
    /// Forgets the state (and any leases) of <paramref name="check"/>'s key, so that its next decision starts as a new
    /// key's; <see langword="false"/> when the store held nothing for it.
    /// </summary>
    ValueTask<bool> ResetAsync(RateLimitCheck check, CancellationToken cancellationToken = default);
}
