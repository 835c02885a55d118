using Microsoft.Extensions.Logging.Testing;

namespace Floodgate.Testing;

/// <summary>What a <see cref="FakeLogger"/> collected, as text to search or print.</summary>
public static class FakeLogs
{
    /// <summary>
    /// Each record as one line, "Level: message", followed by " (ExceptionType: exception message)" when it carries
    /// one: the reason a log line gives is often only in its exception.
    /// </summary>
    public static IReadOnlyList<string> Lines(this FakeLogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        return [.. logger.Collector.GetSnapshot().Select(Line)];
    }

    /// <summary>One record as <see cref="Lines"/> writes it.</summary>
    public static string Line(FakeLogRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return record.Exception is { } exception
            ? $"{record.Level}: {record.Message} ({exception.GetType().Name}: {exception.Message})"
            : $"{record.Level}: {record.Message}";
    }
}
