namespace Floodgate.Limits;

/// <summary>
/// The calendar of a quota: periods start at local midnight, on Monday, on the first of the month or on the first of
/// January in one time zone.
/// </summary>
/// <remarks>
/// The boundaries of the current period of each unit are computed once and cached until the period ends, so a decision
/// costs two comparisons, not a time zone conversion, even when daily and monthly quotas share the calendar (as every
/// UTC quota shares <see cref="Utc"/>).
/// </remarks>
public sealed class QuotaCalendar
{
    // A period and the end of the next, which the Redis store asks for on every decision (the script picks by the
    // server's clock).
    private sealed record Period(long Start, long End, long NextEnd);

    // One period per unit (day, week, month, year): one shared slot made quotas of different units replace each
    // other's period, recomputing and allocating on every decision.
    private readonly Period?[] _cached = new Period?[(int)RateUnit.Year - (int)RateUnit.Day + 1];

    /// <summary>Creates a calendar in <paramref name="timeZone"/>.</summary>
    public QuotaCalendar(TimeZoneInfo timeZone)
    {
        ArgumentNullException.ThrowIfNull(timeZone);
        TimeZone = timeZone;
    }

    /// <summary>The calendar in UTC.</summary>
    public static QuotaCalendar Utc { get; } = new(TimeZoneInfo.Utc);

    /// <summary>The time zone whose calendar the periods follow.</summary>
    public TimeZoneInfo TimeZone { get; }

    /// <summary>Finds a time zone by its IANA (or Windows) id and returns its calendar.</summary>
    /// <exception cref="ArgumentException">No such time zone exists on this machine.</exception>
    public static QuotaCalendar ForTimeZone(string timeZoneId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(timeZoneId);
        try
        {
            return new QuotaCalendar(TimeZoneInfo.FindSystemTimeZoneById(timeZoneId));
        }
        catch (TimeZoneNotFoundException ex)
        {
            throw new ArgumentException($"The time zone '{timeZoneId}' is unknown; use an IANA id such as 'Europe/Paris' or 'UTC'.", nameof(timeZoneId), ex);
        }
    }

    /// <summary>
    /// Returns the period of <paramref name="unit"/> that contains <paramref name="nowMicroseconds"/>. A store asks the
    /// limit (<see cref="Limit.CalendarPeriod"/>), which knows its unit.
    /// </summary>
    internal (long Start, long End) PeriodContaining(long nowMicroseconds, RateUnit unit)
    {
        var slot = (uint)(unit - RateUnit.Day);
        var cached = slot < (uint)_cached.Length ? Volatile.Read(ref _cached[slot]) : null;
        if (cached is not null && nowMicroseconds >= cached.Start && nowMicroseconds < cached.NextEnd)
        {
            return nowMicroseconds < cached.End ? (cached.Start, cached.End) : (cached.End, cached.NextEnd);
        }

        var now = DateTimeOffset.UnixEpoch.AddTicks(nowMicroseconds * TimeSpan.TicksPerMicrosecond);
        var local = TimeZoneInfo.ConvertTime(now, TimeZone).DateTime.Date;
        var startLocal = unit switch
        {
            RateUnit.Day => local,
            RateUnit.Week => local.AddDays(-(((int)local.DayOfWeek + 6) % 7)),
            RateUnit.Month => new DateTime(local.Year, local.Month, 1, 0, 0, 0, DateTimeKind.Unspecified),
            RateUnit.Year => new DateTime(local.Year, 1, 1, 0, 0, 0, DateTimeKind.Unspecified),
            _ => throw new ArgumentOutOfRangeException(nameof(unit), unit, "A calendar period is a day, week, month or year."),
        };
        var endLocal = After(startLocal, unit);
        var period = new Period(ToUtcMicroseconds(startLocal), ToUtcMicroseconds(endLocal), ToUtcMicroseconds(After(endLocal, unit)));
        Volatile.Write(ref _cached[slot], period);
        return (period.Start, period.End);
    }

    private static DateTime After(DateTime startLocal, RateUnit unit) => unit switch
    {
        RateUnit.Day => startLocal.AddDays(1),
        RateUnit.Week => startLocal.AddDays(7),
        RateUnit.Month => startLocal.AddMonths(1),
        _ => startLocal.AddYears(1),
    };

    /// <summary>The time zone's id.</summary>
    public override string ToString() => TimeZone.Id;

    private long ToUtcMicroseconds(DateTime local)
    {
        // Midnight may not exist (a daylight-saving gap at midnight): the period starts when the day does.
        while (TimeZone.IsInvalidTime(local))
        {
            local = local.AddMinutes(15);
        }

        // Midnight may happen twice: the period starts at the first.
        var offset = TimeZone.IsAmbiguousTime(local)
            ? TimeZone.GetAmbiguousTimeOffsets(local).Max()
            : TimeZone.GetUtcOffset(local);
        return (local.Ticks - offset.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;
    }
}
