namespace Floodgate.Algorithms;

/// <summary>What an algorithm decided for one key, with the numbers a client is told.</summary>
/// <remarks>
/// Times are in microseconds, the unit every store counts in: a store author builds outcomes with them (or has
/// <see cref="LimitMath"/> build them), and front doors turn them into headers, as <see cref="Engine.RateLimitDecision"/>
/// does with <see cref="TimeSpan"/>s.
/// </remarks>
/// <param name="IsAllowed">Whether the cost fits.</param>
/// <param name="Remaining">What could still be spent now, after this decision.</param>
/// <param name="ResetAfterMicroseconds">How long until the limit is fully available again.</param>
/// <param name="RetryAfterMicroseconds">
/// When denied, how long until the same cost would fit; 0 when allowed; <see cref="Never"/> when the cost can never fit.
/// </param>
public readonly record struct LimitOutcome(bool IsAllowed, long Remaining, long ResetAfterMicroseconds, long RetryAfterMicroseconds)
{
    /// <summary>The retry-after of a cost larger than the limit can ever grant.</summary>
    public const long Never = -1;

    /// <summary>
    /// When allowed by a leaky bucket used as a queue (<see cref="Limits.Limit.MaxDelay"/>), how long the request waits
    /// for its slot, in microseconds; 0 otherwise.
    /// </summary>
    public long DelayMicroseconds { get; init; }
}
