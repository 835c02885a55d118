using Microsoft.Extensions.Logging;
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

    /// <summary>The records of <paramref name="level"/> or above, in the order they were logged.</summary>
    public static IReadOnlyList<FakeLogRecord> AtLeast(this FakeLogCollector collector, LogLevel level)
    {
        ArgumentNullException.ThrowIfNull(collector);
        return [.. collector.GetSnapshot().Where(record => record.Level >= level)];
    }

    /// <summary>
    /// The first record of <paramref name="category"/>, already collected or still to come: a test waits for a line
    /// instead of polling for it. Fails after <paramref name="timeout"/> (30 s unless given).
    /// </summary>
    public static async Task<FakeLogRecord> FirstAsync(this FakeLogCollector collector, string category, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(collector);
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));

        // The sequence starts at the first record collected and then waits for new ones; it never ends by itself.
        await foreach (var record in collector.GetLogsAsync(cancel.Token))
        {
            if (string.Equals(record.Category, category, StringComparison.Ordinal))
            {
                return record;
            }
        }

        throw new InvalidOperationException("The collector's record stream ended.");
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
