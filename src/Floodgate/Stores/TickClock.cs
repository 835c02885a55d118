namespace Floodgate.Stores;

/// <summary>
/// The system clock read once per operating system tick (1 to 4 ms) and shared until the next: on virtual machines a
/// precise read costs about as much as the rest of a decision. Envoy and nginx cache time the same way.
/// </summary>
/// <remarks>
/// Lock-free and allocation-free. A reader may see the previous tick's time for the instant an update is published,
/// so the value can lag by one tick, never lead.
/// </remarks>
internal static class TickClock
{
    private static long s_tick = long.MinValue;
    private static long s_microseconds;

    /// <summary>Now, in microseconds since the Unix epoch, to the resolution of the operating system tick.</summary>
    public static long NowMicroseconds()
    {
        var tick = Environment.TickCount64;
        if (tick == Volatile.Read(ref s_tick))
        {
            return Volatile.Read(ref s_microseconds);
        }

        var now = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;
        Volatile.Write(ref s_microseconds, now);
        Volatile.Write(ref s_tick, tick);
        return now;
    }
}
