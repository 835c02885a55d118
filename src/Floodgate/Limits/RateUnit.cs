namespace Floodgate.Limits;

/// <summary>The unit of a rate's period.</summary>
public enum RateUnit
{
    /// <summary>One second.</summary>
    Second,

    /// <summary>One minute.</summary>
    Minute,

    /// <summary>One hour.</summary>
    Hour,

    /// <summary>One day: 24 hours, or a calendar day for calendar quotas.</summary>
    Day,

    /// <summary>One week: 7 days, or a calendar week (Monday to Sunday) for calendar quotas.</summary>
    Week,

    /// <summary>One month: 30 days, or a calendar month for calendar quotas.</summary>
    Month,

    /// <summary>One year: 365 days, or a calendar year for calendar quotas.</summary>
    Year,
}
