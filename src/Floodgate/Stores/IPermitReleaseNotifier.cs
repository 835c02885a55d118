using Floodgate.Keys;

namespace Floodgate.Stores;

/// <summary>
/// A store shared by several processes that tells each of them when another released a lease of a concurrency key
/// that queues (<see cref="Limits.Limit.QueueSize"/>), so that the requests waiting there for a permit try again
/// without polling the store.
/// </summary>
/// <remarks>
/// Implement it on a shared store (the Redis store publishes a notice from its release script and subscribes once per
/// process). A lost notice costs a waiter at most one poll interval of the engine's queue (every 200 ms by default): the
/// queue polls while anyone waits. A store in one process needs nothing of this: the engine wakes its own waiters when
/// it releases a lease.
/// </remarks>
public interface IPermitReleaseNotifier
{
    /// <summary>
    /// Raised, on any thread, when a process other than this one released a lease of a queued concurrency key. Handlers
    /// must be quick and must not throw.
    /// </summary>
    event Action<StoreKey>? PermitReleased;
}
