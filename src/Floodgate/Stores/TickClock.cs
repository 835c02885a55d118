using System.Runtime.CompilerServices;

namespace Floodgate.Stores;

/// <summary>
/// The system clock read once per operating system tick (1 to 4 ms) and shared until the next: on virtual machines a
/// precise read costs about as much as the rest of a decision. Envoy and nginx cache time the same way.
/// </summary>
/// <remarks>
/// Lock-free and allocation-free to read. A reader may see the previous tick's time for the instant an update is
/// published, so the value can lag by one tick, never lead.
/// </remarks>
internal static class TickClock
{
    /// <summary>Now, in microseconds since the Unix epoch, to the resolution of the operating system tick.</summary>
    public static long NowMicroseconds() => TickClock<SystemTicks>.NowMicroseconds();

    /// <summary>The operating system's tick and clock.</summary>
    internal readonly struct SystemTicks : ITickSource
    {
        public static long Tick() => Environment.TickCount64;

        public static long UtcMicroseconds() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;
    }
}

/// <summary>Where a <see cref="TickClock{TSource}"/> reads its tick and its time; tests substitute their own.</summary>
internal interface ITickSource
{
    /// <summary>A count that only grows and changes once per tick.</summary>
    static abstract long Tick();

    /// <summary>The wall clock, in microseconds since the Unix epoch.</summary>
    static abstract long UtcMicroseconds();
}

/// <summary>The tick clock over a source of ticks and time; see <see cref="TickClock"/>.</summary>
/// <remarks>
/// The tick and the time are two fields, so readers are lock-free, but writers take turns: a writer that reads the time
/// and is descheduled before publishing it would otherwise publish an older time over a newer one, and a thread that
/// read an older tick would publish its time late. A writer holds a lock while it reads the time and publishes both
/// fields, publishes only a tick later than the published one, and never publishes a time earlier than the published
/// one by up to <see cref="MaxHoldMicroseconds"/>: a wall clock stepped back that far is held until it catches up. A
/// larger step back is followed rather than freezing every limit for as long (the algorithms never give a budget back
/// when time goes back). A thread that finds the lock taken returns the published time, usually a tick old; older when the
/// writer holding the lock is descheduled, until it publishes.
/// </remarks>
/// <typeparam name="TSource">The source of ticks and time.</typeparam>
internal static class TickClock<TSource>
    where TSource : ITickSource
{
    /// <summary>How far back a stepped wall clock is held at the published time: one second.</summary>
    public const long MaxHoldMicroseconds = 1_000_000;

    private static readonly Lock Publishing = new();
    private static long s_tick = long.MinValue;
    private static long s_microseconds;

    /// <summary>The time last published, for tests.</summary>
    internal static long Published => Volatile.Read(ref s_microseconds);

    /// <summary>Now, in microseconds since the Unix epoch, to the resolution of the tick.</summary>
    public static long NowMicroseconds()
    {
        var tick = TSource.Tick();
        return tick == Volatile.Read(ref s_tick) ? Volatile.Read(ref s_microseconds) : Publish(tick);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long Publish(long tick)
    {
        if (!Publishing.TryEnter())
        {
            if (Volatile.Read(ref s_tick) != long.MinValue)
            {
                return Volatile.Read(ref s_microseconds);
            }

            // Nothing is published yet: wait for the first time rather than answer 0 (1970).
            Publishing.Enter();
        }

        try
        {
            // The time is written before the tick, so a reader that sees this tick reads this time or a later one.
            var published = Volatile.Read(ref s_microseconds);
            if (tick <= Volatile.Read(ref s_tick))
            {
                return published;
            }

            var now = TSource.UtcMicroseconds();
            if (now < published && published - now <= MaxHoldMicroseconds)
            {
                now = published;
            }

            Volatile.Write(ref s_microseconds, now);
            Volatile.Write(ref s_tick, tick);
            return now;
        }
        finally
        {
            Publishing.Exit();
        }
    }
}
