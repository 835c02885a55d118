using Floodgate.Stores;

namespace Floodgate.Tests.Stores;

public sealed class TickClockTests
{
    private const long Second = 1_000_000;

    [Fact]
    public void The_tick_clock_never_publishes_a_time_read_before_the_one_published()
    {
        // Writer X reads tick 2 and then the time (2000); while it is descheduled before publishing, Y, at tick 3, reads
        // a later time (3000). Without turns, Y published 3000 and X then overwrote it with 2000.
        FakeTicks.Set(1, () => 1_000);
        Assert.Equal(1_000, TickClock<FakeTicks>.NowMicroseconds());

        long y = 0;
        FakeTicks.Set(2, () =>
        {
            FakeTicks.Set(3, () => 3_000);
            var other = new Thread(() => y = TickClock<FakeTicks>.NowMicroseconds());
            other.Start();
            other.Join();
            return 2_000;
        });
        var x = TickClock<FakeTicks>.NowMicroseconds();

        Assert.True(TickClock<FakeTicks>.Published >= Math.Max(x, y), $"published {TickClock<FakeTicks>.Published} after returning {x} and {y}");
        Assert.Equal(3_000, TickClock<FakeTicks>.NowMicroseconds());

        // A wall clock stepped back less than a second is held; a larger step is followed.
        FakeTicks.Set(4, () => 2_500);
        Assert.Equal(3_000, TickClock<FakeTicks>.NowMicroseconds());
        FakeTicks.Set(5, () => 3_000 + (5 * Second));
        Assert.Equal(3_000 + (5 * Second), TickClock<FakeTicks>.NowMicroseconds());
        FakeTicks.Set(6, () => 3_000);
        Assert.Equal(3_000, TickClock<FakeTicks>.NowMicroseconds());
    }

    private readonly struct FakeTicks : ITickSource
    {
        private static long s_tick;
        private static Func<long> s_utc = () => 0;

        public static void Set(long tick, Func<long> utc) => (s_tick, s_utc) = (tick, utc);

        public static long Tick() => Volatile.Read(ref s_tick);

        public static long UtcMicroseconds() => s_utc();
    }
}
