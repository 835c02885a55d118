using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Usage;

/// <summary>One rule's usage by one subject, as the store holds it now.</summary>
/// <param name="Rule">The rule.</param>
/// <param name="Limit">The limit the subject is held to (its plan's, or its override's).</param>
/// <param name="Used">What the subject has spent of <see cref="Capacity"/>: capacity less remaining.</param>
/// <param name="Remaining">What the subject could spend now: exactly what the next decisions would admit.</param>
/// <param name="ResetAfter">How long until the limit is whole again.</param>
/// <param name="PeriodStart">For a quota, when its current period started; otherwise <see langword="null"/>.</param>
/// <param name="PeriodEnd">For a quota, when its current period ends; otherwise <see langword="null"/>.</param>
/// <param name="IsStoreFailure">Whether the store could not be read, so that the numbers are its failure mode's, not the subject's.</param>
public readonly record struct RuleUsage(
    RateLimitRule Rule,
    Limit Limit,
    long Used,
    long Remaining,
    TimeSpan ResetAfter,
    DateTimeOffset? PeriodStart,
    DateTimeOffset? PeriodEnd,
    bool IsStoreFailure)
{
    /// <summary>What the limit grants at once: the burst of a gcra limit, the amount (or permits) of the others.</summary>
    public long Capacity => Limit.Burst;
}
