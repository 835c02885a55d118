using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// The shares the store's local answers decide against (<see cref="RedisStoreOptions.Replicas"/>, failure mode local),
/// pinned: the store takes them from the engine's <see cref="ReplicaShare"/>, which must keep giving each limit the share
/// the store's own division gave before it did (the values below are that division's).
/// </summary>
public sealed class ReplicaShareTests
{
    public static TheoryData<string, int, string, long, long> Limits() => new()
    {
        // Gcra keeps its amount over a period the replicas times as long, and divides its burst.
        { "gcra 100k/s burst 3000", 3, "gcra 100000/3s burst 1000", 30, 30_000 },
        { "gcra 1M/s burst 100", 3, "gcra 1000000/3s burst 33", 3, 99 },
        { "gcra 7/min", 1, "gcra 7/min", 8_571_429, 60_000_003 },
        { "gcra 7/min", 2, "gcra 7/2min burst 3", 17_142_858, 51_428_574 },
        { "gcra 5/h burst 1", 9, "gcra 5/9h burst 1", 6_480_000_000, 6_480_000_000 },

        // A month over 2,000 replicas is past what a period may span: the amount is divided instead, unchecked.
        { "gcra 1000/month burst 10", 2000, "gcra 1/month", 2_592_000_000_000, 2_592_000_000_000 },

        // The others divide their amount, at least 1 each, and keep their period, calendar or lease timeout.
        { "fixed_window 100/s", 3, "fixed_window 33/s", 0, 0 },
        { "sliding_window 2/min", 5, "sliding_window 1/min", 0, 0 },
        { "quota 1000/day", 4, "quota 250/d UTC", 0, 0 },
        { "quota 10/week rolling", 20, "quota 1/week rolling", 0, 0 },
        { "concurrency 10", 3, "concurrency 3 lease 30s", 0, 0 },
        { "concurrency 2", 5, "concurrency 1 lease 30s", 0, 0 },
    };

    [Theory]
    [MemberData(nameof(Limits))]
    public void A_replica_s_share_of_a_limit_is_pinned(string spec, int replicas, string share, long interval, long tolerance)
    {
        var limit = Parse(spec);
        var local = ReplicaShare.Of(limit, replicas);
        Assert.Equal((share, interval, tolerance), (local.ToString(), local.IntervalMicroseconds, local.ToleranceMicroseconds));
        Assert.Equal((limit.Algorithm, limit.Calendar), (local.Algorithm, local.Calendar));
    }

    private static Limit Parse(string spec)
    {
        var parts = spec.Split(' ');
        return parts[0] switch
        {
            "gcra" => Limit.Gcra(Rate.Parse(parts[1]), parts.Length > 3 ? long.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture) : null),
            "fixed_window" => Limit.FixedWindow(Rate.Parse(parts[1])),
            "sliding_window" => Limit.SlidingWindow(Rate.Parse(parts[1])),
            "quota" => Limit.Quota(Rate.Parse(parts[1]), parts.Length > 2 ? null : QuotaCalendar.Utc),
            _ => Limit.Concurrency(long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture)),
        };
    }
}
