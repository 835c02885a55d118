using Floodgate.Rules;

namespace Floodgate.Events;

/// <summary>
/// A request that took a subject's use of a rule's limit across one of the rule's thresholds (<see cref="RateLimitRule.Thresholds"/>).
/// </summary>
/// <param name="Rule">The rule.</param>
/// <param name="Subject">Whom the rule's key names: the request's subject, or its client IP when it has none.</param>
/// <param name="Plan">The plan in force for it (its override's, or its credentials'); <see langword="null"/> for the default.</param>
/// <param name="Percent">The threshold crossed, in percent of the limit.</param>
/// <param name="Used">What the subject has used of the limit after the request.</param>
/// <param name="Limit">What the limit grants at once (a gcra limit's burst).</param>
/// <param name="Rate">The limit's rate, such as <c>10000/d</c>.</param>
/// <param name="PeriodStart">When the period the threshold is counted in started: at most one event per subject, rule, threshold and period.</param>
/// <param name="PeriodEnd">When that period ends.</param>
/// <param name="At">When the request crossed it.</param>
public sealed record ThresholdCrossing(
    RateLimitRule Rule,
    string Subject,
    string? Plan,
    int Percent,
    long Used,
    long Limit,
    string Rate,
    DateTimeOffset PeriodStart,
    DateTimeOffset PeriodEnd,
    DateTimeOffset At)
;

/// <summary>Sees the threshold crossings of rules with <see cref="RateLimitRule.Thresholds"/>; called on the decision path, so it must only enqueue.</summary>
public interface IThresholdObserver
{
    /// <summary>A request crossed a threshold. Called on the request's thread: return at once (enqueue, never wait).</summary>
    void OnCrossed(ThresholdCrossing crossing);
}
