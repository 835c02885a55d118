using Floodgate.Limits;

namespace Floodgate.Algorithms;

// The sliding log: its state is a list of entry times, which each store keeps in its own way (a ring in memory, a list
// in Redis); these functions decide on what a store reads of it.
public static partial class LimitMath
{
    /// <summary>
    /// The moment a sliding log is decided at: <paramref name="now"/>, or the log's newest entry when the clock stepped
    /// back behind it, so that a clock stepped back never gives a budget back.
    /// </summary>
    /// <param name="now">Now, in microseconds since the Unix epoch.</param>
    /// <param name="newestEntry">The time of the log's newest entry, or 0 when it is empty.</param>
    public static long SlidingLogNow(long now, long newestEntry) => Math.Max(now, newestEntry);

    /// <summary>
    /// Which entry must leave the window for <paramref name="cost"/> to fit, counted from the oldest of the
    /// <paramref name="count"/> entries in the window (0-based); -1 when none need to (the cost fits, or never can).
    /// </summary>
    public static long SlidingLogBlockingIndex(Limit limit, long count, long cost)
    {
        ArgumentNullException.ThrowIfNull(limit);
        return cost <= limit.Amount && count + cost > limit.Amount ? count + cost - limit.Amount - 1 : -1;
    }

    /// <summary>
    /// How many entries a decision that commits appends at <see cref="SlidingLogNow"/>: the cost, but never past the
    /// amount, so the log holds at most the amount in its window (a denied check that is always charged fills it).
    /// </summary>
    public static long SlidingLogAppended(Limit limit, long count, long cost)
    {
        ArgumentNullException.ThrowIfNull(limit);
        return Math.Max(0, Math.Min(cost, limit.Amount - count));
    }

    /// <summary>
    /// Decides <paramref name="cost"/> against a sliding log: at most the amount in any window of one period. An entry at
    /// time t counts while <c>t &gt; at − period</c>, where <c>at</c> is <see cref="SlidingLogNow"/>.
    /// </summary>
    /// <param name="limit">A <see cref="LimitAlgorithm.SlidingLog"/> limit.</param>
    /// <param name="count">How many entries of the log count at <c>at</c>.</param>
    /// <param name="blockingEntry">
    /// The time of the entry at <see cref="SlidingLogBlockingIndex"/> among those counted, or 0 when that index is -1.
    /// </param>
    /// <param name="newestEntry">The time of the log's newest entry, or 0 when it is empty.</param>
    /// <param name="now">Now, in microseconds since the Unix epoch.</param>
    /// <param name="cost">The cost, 0 or more: one entry per unit.</param>
    /// <returns>The outcome; times count from <c>at</c>.</returns>
    public static LimitOutcome SlidingLog(Limit limit, long count, long blockingEntry, long newestEntry, long now, long cost)
    {
        ArgumentNullException.ThrowIfNull(limit);
        now = SlidingLogNow(now, newestEntry);
        var amount = limit.Amount;
        var window = limit.PeriodMicroseconds;
        var resetAfter = count > 0 ? newestEntry + window - now : 0;
        if (cost > amount)
        {
            return new LimitOutcome(false, Math.Max(0, amount - count), resetAfter, LimitOutcome.Never);
        }

        if (count + cost > amount)
        {
            // The cost fits once the blocking entry has left the window: every entry after it is newer.
            return new LimitOutcome(false, Math.Max(0, amount - count), resetAfter, blockingEntry + window - now);
        }

        return new LimitOutcome(true, amount - count - cost, cost > 0 ? window : resetAfter, 0);
    }
}
