namespace Floodgate.Limits;

/// <summary>Which waiter of a concurrency queue (<see cref="Limit.WithQueue"/>) gets the next permit.</summary>
public enum QueueOrder
{
    /// <summary>The one that has waited longest: fair, but under overload every waiter waits about the whole timeout.</summary>
    Fifo,

    /// <summary>
    /// The one that arrived last: under overload most waiters are served quickly and the oldest time out, so the latency
    /// of those served stays low; fairness is what it costs.
    /// </summary>
    Lifo,
}
