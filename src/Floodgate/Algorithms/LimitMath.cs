using Floodgate.Limits;

namespace Floodgate.Algorithms;

/// <summary>
/// Every counting algorithm, as pure functions of a state, a time and a cost. The in-memory store calls these directly;
/// the Redis scripts mirror <c>next</c> and <c>allowed</c> line by line, and the Redis store calls these on the state a
/// script read to describe its answer, so both stores answer alike by construction.
/// </summary>
/// <remarks>
/// A rejected cost never changes the state, and a cost of 0 is a probe that never does; a check charged whether or not
/// it fits (<see cref="Stores.RateLimitCheck.IsAlwaysCharged"/>) is charged by <see cref="Settle"/> when it does not. The arithmetic uses only
/// additions, comparisons and divisions of integers below 2^53, so a Lua double computes the same values.
/// A clock may step back (NTP, a VM restored, a cached time published late). No algorithm lets that give a budget
/// back: gcra counts from the later of now and its arrival time, the windows take now as no earlier than the start of
/// the state's window, and a quota period that starts after now stays in force.
/// Concurrency is not here: its state is a set of leases, which each store keeps in its own way.
/// <para>
/// The store-author API, with <see cref="LimitState"/>, <see cref="LimitOutcome"/> and the microsecond parameters of
/// <see cref="Limit"/> (<see cref="Limit.PeriodMicroseconds"/>, <see cref="Limit.IntervalMicroseconds"/>,
/// <see cref="Limit.ToleranceMicroseconds"/>, <see cref="Limit.LeaseTimeoutMicroseconds"/>,
/// <see cref="Limit.CalendarPeriod"/>, <see cref="Limit.MaxSpanMicroseconds"/>): an application that only sets limits
/// needs none of it. A store decides with these functions, or mirrors them (as the Redis store's script does) and calls
/// them on the state it read to describe the answer; see <see cref="Stores.IRateLimitStore"/>.
/// </para>
/// </remarks>
public static partial class LimitMath
{
    /// <summary>Decides <paramref name="cost"/> against <paramref name="limit"/> for a key in <paramref name="state"/> at <paramref name="now"/>.</summary>
    /// <param name="limit">The limit; not a concurrency limit.</param>
    /// <param name="state">The key's state before the decision.</param>
    /// <param name="now">Now, in microseconds since the Unix epoch.</param>
    /// <param name="cost">The cost, 0 or more.</param>
    /// <param name="next">The key's state after the decision, which the store keeps only when the decision commits.</param>
    /// <returns>The outcome.</returns>
    public static LimitOutcome Decide(Limit limit, in LimitState state, long now, long cost, out LimitState next)
    {
        ArgumentNullException.ThrowIfNull(limit);
        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket => Gcra(limit, state, now, cost, out next),
            LimitAlgorithm.FixedWindow => FixedWindow(limit, state, now, cost, out next),
            LimitAlgorithm.SlidingWindow => SlidingWindow(limit, state, now, cost, out next),
            LimitAlgorithm.Quota => Quota(limit, state, now, cost, out next),
            LimitAlgorithm.SlidingLog => throw new ArgumentException("Sliding log limits are decided on the store's log, by SlidingLog.", nameof(limit)),
            _ => throw new ArgumentException("Concurrency limits are decided by the store's lease set.", nameof(limit)),
        };
    }

    /// <summary>
    /// When a state written at <paramref name="next"/> becomes the same as no state at all, in microseconds since the
    /// Unix epoch: the moment a store may forget it.
    /// </summary>
    public static long ExpiresAt(Limit limit, in LimitState next)
    {
        ArgumentNullException.ThrowIfNull(limit);
        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket => next.A,
            LimitAlgorithm.FixedWindow => next.A + limit.PeriodMicroseconds,
            LimitAlgorithm.SlidingWindow => next.A + (2 * limit.PeriodMicroseconds),
            LimitAlgorithm.Quota => next.C,
            LimitAlgorithm.SlidingLog => throw new ArgumentException("A sliding log expires with its newest entry: SlidingLogExpiresAt.", nameof(limit)),
            _ => throw new ArgumentException("Concurrency limits are decided by the store's lease set.", nameof(limit)),
        };
    }

    /// <summary>
    /// The token bucket as a theoretical arrival time (TAT): each unit of cost pushes the TAT one emission interval
    /// later; a request fits while the TAT stays within the burst tolerance of now.
    /// </summary>
    /// <remarks>
    /// The leaky bucket as a meter is the same function: its bucket, of <see cref="Limit.Burst"/> units leaking one per
    /// interval, holds <c>(TAT − now) / interval</c> units at now and is empty at the TAT, so "the cost fits in the
    /// bucket" and "the TAT stays within the tolerance" are one comparison.
    /// </remarks>
    internal static LimitOutcome Gcra(Limit limit, in LimitState state, long now, long cost, out LimitState next)
    {
        var interval = limit.IntervalMicroseconds;
        var tolerance = limit.ToleranceMicroseconds;
        var baseline = Math.Max(state.A, now);
        next = state;
        if (cost > limit.Burst)
        {
            return new LimitOutcome(false, Math.Max(0, (now + tolerance - baseline) / interval), baseline - now, LimitOutcome.Never);
        }

        var candidate = baseline + (interval * cost);
        var allowAt = candidate - tolerance;
        if (allowAt > now)
        {
            // A settled extra charge may have overdrawn the bucket: nothing remains, rather than a negative count.
            return new LimitOutcome(false, Math.Max(0, (now + tolerance - baseline) / interval), baseline - now, allowAt - now);
        }

        if (cost > 0)
        {
            next = new LimitState(candidate, 0, 0);
        }

        return new LimitOutcome(true, (now + tolerance - candidate) / interval, candidate - now, 0);
    }

    /// <summary>A counter per window aligned to the Unix epoch; the count returns to 0 at each window start.</summary>
    internal static LimitOutcome FixedWindow(Limit limit, in LimitState state, long now, long cost, out LimitState next)
    {
        // A state from a later window means the clock stepped back: stay in that window rather than start over.
        now = Math.Max(now, state.A);
        var window = limit.PeriodMicroseconds;
        var start = now - (now % window);
        var count = state.A == start ? state.B : 0;
        return Counter(limit.Amount, start, start + window, count, now, cost, state, out next);
    }

    /// <summary>A quota: a counter over a calendar period, or over a period that starts with the first request (rolling).</summary>
    internal static LimitOutcome Quota(Limit limit, in LimitState state, long now, long cost, out LimitState next)
    {
        var (start, end) = QuotaPeriod(limit, state, now);
        var count = state.A == start && state.C == end ? state.B : 0;
        return Counter(limit.Amount, start, end, count, now, cost, state, out next);
    }

    /// <summary>The quota period a decision at <paramref name="now"/> counts in.</summary>
    private static (long Start, long End) QuotaPeriod(Limit limit, in LimitState state, long now)
    {
        if (state.A > now && state.C > state.A)
        {
            // A period that starts after now means the clock stepped back: it stays in force, never replaced by an earlier one.
            return (state.A, state.C);
        }

        if (limit.Calendar is not null)
        {
            return limit.CalendarPeriod(now);
        }

        return state.C > now ? (state.A, state.C) : (now, now + limit.PeriodMicroseconds);
    }

    /// <summary>
    /// The weighted two-window counter: the estimate is the previous window's count, scaled by the share of the
    /// sliding window that still overlaps it, plus the current window's count.
    /// </summary>
    /// <remarks>
    /// In any window aligned to the period it admits at most the amount, and in any sliding window of one period
    /// at most twice the amount; under steady traffic the estimate tracks the true count closely.
    /// </remarks>
    internal static LimitOutcome SlidingWindow(Limit limit, in LimitState state, long now, long cost, out LimitState next)
    {
        // A state from a later window means the clock stepped back: stay in that window rather than start over.
        now = Math.Max(now, state.A);
        var window = limit.PeriodMicroseconds;
        var amount = limit.Amount;
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

        var elapsed = now - start;
        var weighted = Weighted(previous, window - elapsed, window);
        next = state;
        var resetAfter = current > 0 ? start + (2 * window) - now : previous > 0 ? start + window - now : 0;
        if (cost > amount)
        {
            return new LimitOutcome(false, Math.Max(0, amount - weighted - current), resetAfter, LimitOutcome.Never);
        }

        if (weighted + current + cost > amount)
        {
            var retryAt = current + cost <= amount
                ? DecayUntil(previous, amount - current - cost, start, window, now)
                : DecayUntil(current, amount - cost, start + window, window, start + window);
            return new LimitOutcome(false, Math.Max(0, amount - weighted - current), resetAfter, retryAt - now);
        }

        if (cost > 0)
        {
            next = new LimitState(start, previous, current + cost);
            resetAfter = start + (2 * window) - now;
        }

        return new LimitOutcome(true, amount - weighted - current - cost, resetAfter, 0);
    }

    /// <summary>
    /// Decides a concurrency check: <paramref name="inFlight"/> permits are held by unexpired leases, the earliest of
    /// which expires at <paramref name="earliestExpiry"/> and the latest at <paramref name="latestExpiry"/> (both 0 when none).
    /// </summary>
    /// <remarks>
    /// A denied request is told to retry when the earliest lease would expire, but after at most a second: leases are
    /// usually released long before they time out.
    /// </remarks>
    public static LimitOutcome Concurrency(Limit limit, long inFlight, long earliestExpiry, long latestExpiry, long now, long cost)
    {
        ArgumentNullException.ThrowIfNull(limit);
        var permits = limit.Amount;
        var resetAfter = Math.Max(0, latestExpiry - now);
        if (cost > permits)
        {
            return new LimitOutcome(false, Math.Max(0, permits - inFlight), resetAfter, LimitOutcome.Never);
        }

        if (inFlight + cost > permits)
        {
            var retry = Math.Clamp(earliestExpiry - now, 1, MaxConcurrencyRetryMicroseconds);
            return new LimitOutcome(false, Math.Max(0, permits - inFlight), resetAfter, retry);
        }

        if (cost > 0)
        {
            resetAfter = Math.Max(resetAfter, limit.LeaseTimeoutMicroseconds);
        }

        return new LimitOutcome(true, permits - inFlight - cost, resetAfter, 0);
    }

    /// <summary>The longest retry-after a concurrency denial gives: one second.</summary>
    public const long MaxConcurrencyRetryMicroseconds = 1_000_000;

    /// <summary><c>floor(count × remainingShare / window)</c>, evaluated in doubles exactly as Lua evaluates it.</summary>
    internal static long Weighted(long count, long overlap, long window) =>
        (long)Math.Floor((double)count * overlap / window);

    private static LimitOutcome Counter(long amount, long start, long end, long count, long now, long cost, in LimitState state, out LimitState next)
    {
        next = state;
        if (cost > amount)
        {
            return new LimitOutcome(false, Math.Max(0, amount - count), end - now, LimitOutcome.Never);
        }

        if (count + cost > amount)
        {
            // A settled extra charge may have taken the count past the amount: nothing remains until the period ends.
            return new LimitOutcome(false, Math.Max(0, amount - count), end - now, end - now);
        }

        if (cost > 0)
        {
            next = new LimitState(start, count + cost, end);
        }

        return new LimitOutcome(true, amount - count - cost, end - now, 0);
    }

    /// <summary>
    /// The first moment at or after <paramref name="from"/> in the window starting at <paramref name="windowStart"/>
    /// when <c>Weighted(count, ...)</c> falls to <paramref name="room"/> or below.
    /// </summary>
    private static long DecayUntil(long count, long room, long windowStart, long window, long from)
    {
        if (count <= room)
        {
            return from;
        }

        // Solve count × (window − e) / window < room + 1 for the elapsed time e, then step to the exact boundary
        // with the same floating-point expression the decision uses.
        var earliest = Math.Clamp(from - windowStart, 0, window);
        var elapsed = Math.Clamp(window - (long)Math.Ceiling((double)(room + 1) * window / count), earliest, window);
        while (elapsed > earliest && Weighted(count, window - (elapsed - 1), window) <= room)
        {
            elapsed--;
        }

        while (elapsed < window && Weighted(count, window - elapsed, window) > room)
        {
            elapsed++;
        }

        return Math.Max(from, windowStart + elapsed);
    }
}
