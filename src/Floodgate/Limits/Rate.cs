using System.Globalization;

namespace Floodgate.Limits;

/// <summary>
/// An amount per period, such as <c>300/min</c>, <c>1M/week</c> or <c>2/5s</c>.
/// </summary>
/// <remarks>
/// Periods measured in months and years have fixed lengths (30 and 365 days) except in calendar quotas, which
/// follow the calendar of their time zone.
/// </remarks>
public readonly record struct Rate
{
    private const long MicrosecondsPerSecond = 1_000_000;

    /// <summary>Creates a rate of <paramref name="amount"/> per <paramref name="count"/> <paramref name="unit"/>s.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The amount or the unit count is not positive.</exception>
    public Rate(long amount, int count, RateUnit unit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if (!Enum.IsDefined(unit))
        {
            throw new ArgumentOutOfRangeException(nameof(unit), unit, "Unknown rate unit.");
        }

        Amount = amount;
        UnitCount = count;
        Unit = unit;
    }

    /// <summary>How many requests (or cost units) the period admits.</summary>
    public long Amount { get; }

    /// <summary>How many <see cref="Unit"/>s one period spans: 5 in <c>2/5s</c>.</summary>
    public int UnitCount { get; }

    /// <summary>The unit of the period.</summary>
    public RateUnit Unit { get; }

    /// <summary>The fixed length of one period.</summary>
    public TimeSpan Period => TimeSpan.FromMicroseconds(PeriodMicroseconds);

    /// <summary>
    /// The fixed length of one period in microseconds, the unit every algorithm counts time in. A store reads a limit's
    /// (<see cref="Limit.PeriodMicroseconds"/>); this one throws <see cref="OverflowException"/> for a period too long to count.
    /// </summary>
    internal long PeriodMicroseconds => checked(UnitMicroseconds(Unit) * UnitCount);

    /// <summary>Parses a rate such as <c>10/s</c>, <c>300/min</c>, <c>5000/h</c>, <c>1M/week</c> or <c>2/5s</c>.</summary>
    /// <exception cref="FormatException">The text is not a rate; the message quotes it and says what was expected.</exception>
    public static Rate Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var rate, out var error) ? rate : throw new FormatException(error);
    }

    /// <summary>Tries to parse a rate; see <see cref="Parse(string)"/>.</summary>
    public static bool TryParse(string? text, out Rate rate) => TryParse(text, out rate, out _);

    /// <summary>Tries to parse a rate, and on failure says why.</summary>
    public static bool TryParse(string? text, out Rate rate, out string error)
    {
        rate = default;
        const string Expected = "expected '<amount>/<period>' such as '10/s', '300/min', '1M/week' or '2/5s'";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = $"'{text}' is not a rate: {Expected}.";
            return false;
        }

        var span = text.AsSpan().Trim();
        var slash = span.IndexOf('/');
        if (slash <= 0 || slash == span.Length - 1)
        {
            error = $"'{text}' is not a rate: {Expected}.";
            return false;
        }

        if (!TryParseAmount(span[..slash].Trim(), out var amount))
        {
            error = $"'{text}' is not a rate: the amount '{span[..slash].Trim()}' must be a positive whole number, optionally with k, M or G (thousand, million, billion).";
            return false;
        }

        var period = span[(slash + 1)..].Trim();
        var digits = 0;
        while (digits < period.Length && char.IsAsciiDigit(period[digits]))
        {
            digits++;
        }

        var count = 1;
        if (digits > 0 && (!int.TryParse(period[..digits], NumberStyles.None, CultureInfo.InvariantCulture, out count) || count <= 0))
        {
            error = $"'{text}' is not a rate: the period multiplier '{period[..digits]}' must be a positive whole number.";
            return false;
        }

        if (!TryParseUnit(period[digits..].Trim(), out var unit))
        {
            error = $"'{text}' is not a rate: the unit '{period[digits..].Trim()}' is unknown; use s, min, h, d, week, month or year.";
            return false;
        }

        try
        {
            rate = new Rate(amount, count, unit);
            _ = rate.PeriodMicroseconds;
        }
        catch (OverflowException)
        {
            error = $"'{text}' is not a rate: the period is too long.";
            return false;
        }

        error = string.Empty;
        return true;
    }

    /// <summary>Formats the rate the way <see cref="Parse(string)"/> reads it, such as <c>300/min</c>.</summary>
    public override string ToString()
    {
        var unit = Unit switch
        {
            RateUnit.Second => "s",
            RateUnit.Minute => "min",
            RateUnit.Hour => "h",
            RateUnit.Day => "d",
            RateUnit.Week => "week",
            RateUnit.Month => "month",
            _ => "year",
        };
        return UnitCount == 1
            ? string.Create(CultureInfo.InvariantCulture, $"{Amount}/{unit}")
            : string.Create(CultureInfo.InvariantCulture, $"{Amount}/{UnitCount}{unit}");
    }

    internal static long UnitMicroseconds(RateUnit unit) => unit switch
    {
        RateUnit.Second => MicrosecondsPerSecond,
        RateUnit.Minute => 60 * MicrosecondsPerSecond,
        RateUnit.Hour => 3_600 * MicrosecondsPerSecond,
        RateUnit.Day => 86_400 * MicrosecondsPerSecond,
        RateUnit.Week => 7 * 86_400 * MicrosecondsPerSecond,
        RateUnit.Month => 30 * 86_400 * MicrosecondsPerSecond,
        RateUnit.Year => 365 * 86_400 * MicrosecondsPerSecond,
        _ => throw new ArgumentOutOfRangeException(nameof(unit), unit, "Unknown rate unit."),
    };

    private static bool TryParseAmount(ReadOnlySpan<char> text, out long amount)
    {
        amount = 0;
        if (text.IsEmpty)
        {
            return false;
        }

        long multiplier = text[^1] switch
        {
            'k' or 'K' => 1_000,
            'm' or 'M' => 1_000_000,
            'g' or 'G' or 'b' or 'B' => 1_000_000_000,
            _ => 1,
        };
        if (multiplier != 1)
        {
            text = text[..^1];
        }

        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value <= 0)
        {
            return false;
        }

        try
        {
            amount = checked(value * multiplier);
        }
        catch (OverflowException)
        {
            return false;
        }

        return true;
    }

    private static bool TryParseUnit(ReadOnlySpan<char> text, out RateUnit unit)
    {
        unit = text.ToString().ToLowerInvariant() switch
        {
            "s" or "sec" or "secs" or "second" or "seconds" => RateUnit.Second,
            "m" or "min" or "mins" or "minute" or "minutes" => RateUnit.Minute,
            "h" or "hr" or "hrs" or "hour" or "hours" => RateUnit.Hour,
            "d" or "day" or "days" => RateUnit.Day,
            "w" or "wk" or "week" or "weeks" => RateUnit.Week,
            "mo" or "mon" or "month" or "months" => RateUnit.Month,
            "y" or "yr" or "year" or "years" => RateUnit.Year,
            _ => (RateUnit)(-1),
        };
        return unit >= 0;
    }
}
