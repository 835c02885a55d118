using Envoy.Service.Ratelimit.V3;
using Floodgate.Limits;
using OverrideUnit = Envoy.Type.V3.RateLimitUnit;
using Unit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Floodgate.Envoy.Configuration;

/// <summary>Maps the units of the configuration, the request and the response onto the engine's.</summary>
internal static class EnvoyUnits
{
    /// <summary>Parses a configured unit, case-insensitively, as the reference does.</summary>
    public static bool TryParse(string text, out Unit unit)
    {
        unit = text.ToUpperInvariant() switch
        {
            "SECOND" => Unit.Second,
            "MINUTE" => Unit.Minute,
            "HOUR" => Unit.Hour,
            "DAY" => Unit.Day,
            "WEEK" => Unit.Week,
            "MONTH" => Unit.Month,
            "YEAR" => Unit.Year,
            _ => Unit.Unknown,
        };
        return unit != Unit.Unknown;
    }

    /// <summary>The unit of a limit override, or <see cref="Unit.Unknown"/> when Envoy sent none the service knows.</summary>
    public static Unit FromOverride(OverrideUnit unit) => unit switch
    {
        OverrideUnit.Second => Unit.Second,
        OverrideUnit.Minute => Unit.Minute,
        OverrideUnit.Hour => Unit.Hour,
        OverrideUnit.Day => Unit.Day,
        OverrideUnit.Month => Unit.Month,
        OverrideUnit.Year => Unit.Year,
        _ => Unit.Unknown,
    };

    /// <summary>The engine's unit; a month is 30 days and a year 365, as in the reference.</summary>
    public static RateUnit ToRateUnit(Unit unit) => unit switch
    {
        Unit.Second => RateUnit.Second,
        Unit.Minute => RateUnit.Minute,
        Unit.Hour => RateUnit.Hour,
        Unit.Day => RateUnit.Day,
        Unit.Week => RateUnit.Week,
        Unit.Month => RateUnit.Month,
        Unit.Year => RateUnit.Year,
        _ => throw new ArgumentOutOfRangeException(nameof(unit), unit, "A rate limit unit is second, minute, hour, day, week, month or year."),
    };
}
