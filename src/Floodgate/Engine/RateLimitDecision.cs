using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>What one rule decided for one request: a value, never an exception.</summary>
public readonly struct RateLimitDecision
{
    internal RateLimitDecision(RateLimitRule rule, Limit limit, in LimitOutcome outcome, bool isShadow, bool isStoreFailure)
        : this(rule, new CheckDecision(limit, outcome, isStoreFailure), isShadow)
    {
    }

    internal RateLimitDecision(RateLimitRule rule, in CheckDecision decision, bool isShadow)
    {
        Rule = rule;
        Limit = decision.Limit;
        IsAllowed = decision.IsAllowed;
        Remaining = decision.Remaining;
        ResetAfter = decision.ResetAfter;
        RetryAfter = decision.RetryAfter;
        IsShadowed = isShadow;
        IsStoreFailure = decision.IsStoreFailure;
        Delay = decision.Delay;
    }

    /// <summary>
    /// When allowed by a leaky bucket used as a queue (<see cref="Limits.Limit.MaxDelay"/>), how long the request waits
    /// for its slot before it goes on; <see cref="TimeSpan.Zero"/> otherwise.
    /// </summary>
    public TimeSpan Delay { get; }

    /// <summary>Whether the rule admitted the request. A shadowed rule may say no without the request being rejected.</summary>
    public bool IsAllowed { get; }

    /// <summary>The rule that decided; <see langword="null"/> for the default value, when no rule applied.</summary>
    public RateLimitRule? Rule { get; }

    /// <summary>The limit the rule applied (the plan's, for plan limits).</summary>
    public Limit? Limit { get; }

    /// <summary>The rule's tier.</summary>
    public RateLimitTier Tier => Rule?.Tier ?? default;

    /// <summary>The amount per period (or the concurrency permits).</summary>
    public long Quota => Limit?.Amount ?? 0;

    /// <summary>What could still be spent now.</summary>
    public long Remaining { get; }

    /// <summary>How long until the limit is fully available again.</summary>
    public TimeSpan ResetAfter { get; }

    /// <summary>
    /// When rejected, how long until the request would fit; <see cref="TimeSpan.Zero"/> when allowed;
    /// <see cref="Timeout.InfiniteTimeSpan"/> when its cost is more than the limit can ever grant.
    /// </summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>Whether the rule only observes (shadow mode), so its "no" did not reject the request.</summary>
    public bool IsShadowed { get; }

    /// <summary>Whether the store failed and the decision comes from its failure policy.</summary>
    public bool IsStoreFailure { get; }

    /// <summary>Whether the cost can never fit, however long the client waits.</summary>
    public bool IsPermanent => RetryAfter == Timeout.InfiniteTimeSpan;

    /// <inheritdoc/>
    public override string ToString() => Rule is null
        ? "no rule"
        : $"{Rule} {(IsAllowed ? "allowed" : "rejected")}{(IsShadowed ? " (shadow)" : string.Empty)} remaining {Remaining} of {Quota}, reset {ResetAfter}, retry {RetryAfter}";
}
