using Floodgate.Limits;

namespace Floodgate.Stores;

/// <summary>
/// A replica's share of a limit, for a shared store's <see cref="StoreFailureMode.Local"/> answers: while the store cannot
/// be reached, each of the replicas decides in process against its share, so that together they admit about the limit.
/// </summary>
public static class ReplicaShare
{
    /// <summary>The share of <paramref name="limit"/> that each of <paramref name="replicas"/> replicas decides against.</summary>
    /// <remarks>
    /// <para>
    /// A gcra (or leaky_bucket) limit keeps its amount over a period <paramref name="replicas"/> times as long, so its interval is the
    /// limit's times the replicas and the share is as exact as the limit (100k/s over 3 replicas is one request per 30 µs,
    /// where 33,333/s would round to 31 µs and admit 3 % less); its burst is divided. A period too long to multiply (a
    /// monthly limit over thousands of replicas) divides the amount instead, without <see cref="Limit.Gcra"/>'s checks:
    /// the local answers must come during an outage, never an exception.
    /// </para>
    /// <para>
    /// Every other limit divides its amount (at least 1 each) over the same period, calendar or lease timeout. One replica
    /// shares the whole limit. A leased slice is not kept: the share is decided in process, never leased.
    /// </para>
    /// </remarks>
    /// <param name="limit">The limit.</param>
    /// <param name="replicas">How many replicas share it, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="replicas"/> is less than 1.</exception>
    public static Limit Of(Limit limit, int replicas)
    {
        ArgumentNullException.ThrowIfNull(limit);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicas, 1);
        if (replicas == 1)
        {
            return limit;
        }

        var amount = Math.Max(1, limit.Amount / replicas);
        var rate = new Rate(amount, limit.Rate.UnitCount, limit.Rate.Unit);
        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket => GcraShare(limit, replicas),
            LimitAlgorithm.SlidingLog => Limit.SlidingLog(rate),
            LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
            LimitAlgorithm.FixedWindow => Limit.FixedWindow(rate),
            LimitAlgorithm.Quota => Limit.Quota(rate, limit.Calendar),
            _ => Limit.Concurrency(amount, limit.LeaseTimeout),
        };
    }

    private static Limit GcraShare(Limit limit, int replicas)
    {
        var burst = Math.Max(1, limit.Burst / replicas);
        if (limit.Rate.PeriodMicroseconds <= Limit.MaxSpanMicroseconds / replicas && limit.Rate.UnitCount <= int.MaxValue / replicas)
        {
            var slower = new Rate(limit.Rate.Amount, limit.Rate.UnitCount * replicas, limit.Rate.Unit);
            return limit.Algorithm == LimitAlgorithm.LeakyBucket ? Limit.LeakyBucket(slower, burst) : Limit.Gcra(slower, burst);
        }

        return Limit.UncheckedGcra(new Rate(Math.Max(1, limit.Amount / replicas), limit.Rate.UnitCount, limit.Rate.Unit), burst, limit.Algorithm);
    }
}
