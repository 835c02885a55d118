using Floodgate.Limits;
using Floodgate.Redis;
using Floodgate.Stores;

namespace Floodgate.Redis.Tests;

/// <summary>
/// The engine's <see cref="ReplicaShare"/> gives every limit the share the store's own division does, so the store can
/// use it (and stop reaching into the engine's internals for an unchecked gcra limit) without changing a local answer.
/// </summary>
public sealed class ReplicaShareTests
{
    public static TheoryData<string, int> Limits() => new()
    {
        { "gcra 100k/s burst 3000", 3 },
        { "gcra 1M/s burst 100", 3 },
        { "gcra 1000/month burst 10", 2000 },
        { "gcra 7/min", 1 },
        { "gcra 7/min", 2 },
        { "gcra 5/h burst 1", 9 },
        { "fixed_window 100/s", 3 },
        { "sliding_window 2/min", 5 },
        { "quota 1000/day", 4 },
        { "quota 10/week rolling", 20 },
        { "concurrency 10", 3 },
        { "concurrency 2", 5 },
    };

    [Theory]
    [MemberData(nameof(Limits))]
    public void The_engine_s_share_of_a_limit_is_the_store_s(string spec, int replicas)
    {
        var limit = Parse(spec);
        var store = RedisStore.DivideLimit(limit, replicas);
        var engine = ReplicaShare.Of(limit, replicas);
        Assert.Equal(
            (store.Algorithm, store.Rate, store.Burst, store.IntervalMicroseconds, store.ToleranceMicroseconds, store.LeaseTimeout, store.Calendar, store.ToString()),
            (engine.Algorithm, engine.Rate, engine.Burst, engine.IntervalMicroseconds, engine.ToleranceMicroseconds, engine.LeaseTimeout, engine.Calendar, engine.ToString()));
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
