using Floodgate.Algorithms;
using Floodgate.Limits;

namespace Floodgate.Stores;

/// <summary>
/// What one check's outcome tells a client, whoever made the check: whether it fits, what remains, when the limit resets
/// and when to retry. The engine's <c>RateLimitDecision</c> adds the rule that made the check; the
/// <c>RateLimiter</c> adapters, which have no rule, turn it into a lease.
/// </summary>
internal readonly struct CheckDecision
{
    /// <summary>Describes <paramref name="outcome"/>, the outcome of a check against <paramref name="limit"/>.</summary>
    public CheckDecision(Limit limit, in LimitOutcome outcome, bool isStoreFailure)
    {
        Limit = limit;
        IsAllowed = outcome.IsAllowed;
        Remaining = Math.Max(0, outcome.Remaining);
        ResetAfter = TimeSpan.FromMicroseconds(Math.Max(0, outcome.ResetAfterMicroseconds));
        RetryAfter = outcome.RetryAfterMicroseconds == LimitOutcome.Never
            ? Timeout.InfiniteTimeSpan
            : TimeSpan.FromMicroseconds(outcome.RetryAfterMicroseconds);
        IsStoreFailure = isStoreFailure;
        Delay = outcome.IsAllowed ? TimeSpan.FromMicroseconds(outcome.DelayMicroseconds) : TimeSpan.Zero;
    }

    /// <summary>When allowed by a leaky bucket used as a queue, how long the request waits for its slot.</summary>
    public TimeSpan Delay { get; }

    /// <summary>The limit the check was decided against.</summary>
    public Limit Limit { get; }

    /// <summary>Whether the check fits.</summary>
    public bool IsAllowed { get; }

    /// <summary>What could still be spent now, at least 0.</summary>
    public long Remaining { get; }

    /// <summary>How long until the limit is fully available again.</summary>
    public TimeSpan ResetAfter { get; }

    /// <summary>
    /// When it does not fit, how long until it would; <see cref="TimeSpan.Zero"/> when it fits;
    /// <see cref="Timeout.InfiniteTimeSpan"/> when its cost is more than the limit can ever grant.
    /// </summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>Whether the cost can never fit, however long the client waits.</summary>
    public bool IsPermanent => RetryAfter == Timeout.InfiniteTimeSpan;

    /// <summary>Whether the store failed and the outcome comes from its failure policy.</summary>
    public bool IsStoreFailure { get; }
}
