using Floodgate.Limits;

namespace Floodgate.Algorithms;

// Settlement: a cost reserved at admission is corrected once the real cost is known.
public static partial class LimitMath
{
    /// <summary>
    /// The most units one settlement moves a gcra key by, as a span: half of <see cref="Limit.MaxSpanMicroseconds"/>, so
    /// that the arrival time plus the shift stays below 2^53 and a Lua double computes it exactly.
    /// </summary>
    public const long MaxSettleSpanMicroseconds = Limit.MaxSpanMicroseconds / 2;

    /// <summary>
    /// Corrects a key's state by <paramref name="delta"/> units after the fact: a refund when negative (the request cost
    /// less than it reserved), an extra charge when positive (it cost more). Unlike <see cref="Decide"/>, a settlement is
    /// never refused: an extra charge may overdraw the key, which then denies every cost (and every probe) until it has
    /// refilled past zero; a refund never gives back more than the key holds (its count never goes below zero, a gcra
    /// bucket never above full).
    /// </summary>
    /// <remarks>
    /// <para>
    /// The correction lands in the window or period in force at <paramref name="now"/>, computed exactly as
    /// <see cref="Decide"/> computes it (a clock stepped back stays in the state's window). A refund after the reservation's
    /// window has ended has nothing left to refund: the window's count is gone, and the new window's count is never taken
    /// below zero. A refund may still take back what other requests charged to a new window, at most the reservation,
    /// once per request that crosses a window boundary while it runs.
    /// </para>
    /// <para>
    /// Numbers stay exact in Lua doubles: a window's count stays within 0 and <see cref="Limit.MaxAmount"/>, and a gcra
    /// key moves by at most <see cref="MaxSettleSpanMicroseconds"/> at a time and never past now plus
    /// <see cref="Limit.MaxSpanMicroseconds"/> (about 142 years of refill).
    /// </para>
    /// </remarks>
    /// <param name="limit">The limit; not a concurrency limit (a lease's cost is its permits while it is held).</param>
    /// <param name="state">The key's state before the settlement.</param>
    /// <param name="now">Now, in microseconds since the Unix epoch.</param>
    /// <param name="delta">The real cost minus the cost reserved: negative to refund, positive to charge more.</param>
    /// <returns>The key's state after the settlement; <paramref name="state"/> itself when <paramref name="delta"/> is 0.</returns>
    public static LimitState Settle(Limit limit, in LimitState state, long now, long delta)
    {
        ArgumentNullException.ThrowIfNull(limit);
        if (delta == 0)
        {
            return state;
        }

        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket => SettleGcra(limit, state, now, delta),
            LimitAlgorithm.FixedWindow => SettleFixedWindow(limit, state, now, delta),
            LimitAlgorithm.SlidingWindow => SettleSlidingWindow(limit, state, now, delta),
            LimitAlgorithm.Quota => SettleQuota(limit, state, now, delta),
            LimitAlgorithm.SlidingLog => throw new ArgumentException("A sliding_log limit is not settled: its log holds the units admitted, each at its time.", nameof(limit)),
            _ => throw new ArgumentException("A concurrency limit is not settled: its cost is the permits a lease holds.", nameof(limit)),
        };
    }

    /// <summary>
    /// The most units one settlement of a gcra <paramref name="limit"/> moves its key by, either way: a store that
    /// mirrors <see cref="Settle"/> elsewhere (the Redis script) is given this number rather than dividing itself.
    /// </summary>
    public static long MaxSettleUnits(Limit limit)
    {
        ArgumentNullException.ThrowIfNull(limit);
        return limit.Algorithm is LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket ? MaxSettleSpanMicroseconds / limit.IntervalMicroseconds : Limit.MaxAmount;
    }

    private static LimitState SettleGcra(Limit limit, in LimitState state, long now, long delta)
    {
        var units = Math.Clamp(delta, -MaxSettleUnits(limit), MaxSettleUnits(limit));
        var baseline = Math.Max(state.A, now);
        var arrival = Math.Clamp(baseline + (limit.IntervalMicroseconds * units), now, now + Limit.MaxSpanMicroseconds);
        return new LimitState(arrival, 0, 0);
    }

    private static LimitState SettleFixedWindow(Limit limit, in LimitState state, long now, long delta)
    {
        now = Math.Max(now, state.A);
        var window = limit.PeriodMicroseconds;
        var start = now - (now % window);
        var count = state.A == start ? state.B : 0;
        return new LimitState(start, SettledCount(count, delta), start + window);
    }

    private static LimitState SettleSlidingWindow(Limit limit, in LimitState state, long now, long delta)
    {
        now = Math.Max(now, state.A);
        var window = limit.PeriodMicroseconds;
        var start = now - (now % window);
        long previous, current;
        if (state.A == start)
        {
            (previous, current) = (state.B, state.C);
        }
        else if (state.A == start - window)
        {
            (previous, current) = (state.C, 0);
        }
        else
        {
            (previous, current) = (0, 0);
        }

        return new LimitState(start, previous, SettledCount(current, delta));
    }

    private static LimitState SettleQuota(Limit limit, in LimitState state, long now, long delta)
    {
        var (start, end) = QuotaPeriod(limit, state, now);
        var count = state.A == start && state.C == end ? state.B : 0;
        return new LimitState(start, SettledCount(count, delta), end);
    }

    /// <summary>The count after a settlement: never below zero, never past <see cref="Limit.MaxAmount"/>.</summary>
    private static long SettledCount(long count, long delta) =>
        Math.Clamp(count + Math.Clamp(delta, -Limit.MaxAmount, Limit.MaxAmount), 0, Limit.MaxAmount);
}
