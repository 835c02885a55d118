using Microsoft.Extensions.Logging;

namespace Floodgate.Redis;

// Failures: held against the breakers, counted and logged (at most once a second); and the store's log messages.
public sealed partial class RedisStore
{
    private const long LogIntervalMicroseconds = 1_000_000;

    /// <summary>The failure reason of a decision given up on because this process was late, not Redis.</summary>
    private const string Late = "late";

    // Far enough in the past that the first failure is logged; long.MinValue would overflow 'now - last' and, until a
    // breaker opened, silence every failure log.
    private long _lastLog = long.MinValue / 2;
    private long _suppressedLogs;

    /// <summary>
    /// A failed call that is not a decision (a release): on a single node it counts against the breaker; on a cluster
    /// against none, since the decisions sent to that node judge it themselves.
    /// </summary>
    private void Fail(string reason, Exception? exception) => Fail(reason, exception, _breakers.RoutesSlots ? null : _breakers.Own);

    private void Fail(string reason, Exception? exception, CircuitBreaker? breaker) =>
        Report(reason, exception, breaker is not null && breaker.OnFailure(SteadyNow()) ? breaker : null);

    /// <summary>
    /// Counts a failure (unless <paramref name="count"/> is false: it was already) and logs it (at most once a second, and
    /// every breaker opening); <paramref name="opened"/> is the breaker the failure opened, if it did. For
    /// <see cref="Late"/>, <paramref name="lateBy"/> is how late this process saw the deadline (<see cref="TimeProvider.System"/> ticks).
    /// </summary>
    private void Report(string reason, Exception? exception, CircuitBreaker? opened, long lateBy = 0, bool count = true)
    {
        if (count)
        {
            _metrics.CountFailure(reason);
        }

        var now = SteadyNow();
        var last = Volatile.Read(ref _lastLog);
        if (opened is null && now - last < LogIntervalMicroseconds)
        {
            Interlocked.Increment(ref _suppressedLogs);
            return;
        }

        if (Interlocked.CompareExchange(ref _lastLog, now, last) != last && opened is null)
        {
            Interlocked.Increment(ref _suppressedLogs);
            return;
        }

        var suppressed = Interlocked.Exchange(ref _suppressedLogs, 0);
        var mode = _options.FailureMode.ToString().ToLowerInvariant();
        if (opened is not null)
        {
            LogBreakerOpened(_logger, reason, opened.Node, mode, _options.BreakerDuration, suppressed, exception);
        }
        else if (reason == Late)
        {
            LogLate(_logger, Span(Math.Max(0, lateBy)), ThreadPool.PendingWorkItemCount, mode, suppressed);
        }
        else
        {
            LogFailure(_logger, reason, mode, suppressed, exception);
        }
    }

    [LoggerMessage(10, LogLevel.Warning, "Redis call given up on because this process was late, not Redis: the deadline was seen {LateBy} late, or the call was still queued here ({Pending} work items waiting for the thread pool now; CPU or thread-pool starvation); answering by on_failure={Mode}, or a rule's own, and holding it against no circuit breaker ({Suppressed} earlier failures not logged)")]
    private static partial void LogLate(ILogger logger, TimeSpan lateBy, long pending, string mode, long suppressed);

    [LoggerMessage(1, LogLevel.Warning, "Redis {Reason}: answering by on_failure={Mode}, or a rule's own ({Suppressed} earlier failures not logged)")]
    private static partial void LogFailure(ILogger logger, string reason, string mode, long suppressed, Exception? exception);

    [LoggerMessage(2, LogLevel.Warning, "Redis {Reason}: circuit breaker of {Node} open, answering its keys by on_failure={Mode} (or a rule's own) for {Duration} before probing ({Suppressed} earlier failures not logged)")]
    private static partial void LogBreakerOpened(ILogger logger, string reason, string node, string mode, TimeSpan duration, long suppressed, Exception? exception);

    [LoggerMessage(8, LogLevel.Information, "Redis circuit breaker of {Node} closed: its probe succeeded, its keys are decided in Redis again")]
    private static partial void LogBreakerClosed(ILogger logger, string node);

    [LoggerMessage(4, LogLevel.Warning, "A concurrency lease of a Redis call given up on could not be released; it frees itself at its lease timeout")]
    private static partial void LogAbandonedReleaseFailed(ILogger logger, Exception exception);

    [LoggerMessage(9, LogLevel.Error, "Connecting to Redis in the background failed; decisions follow on_failure")]
    private static partial void LogConnectFailed(ILogger logger, Exception exception);

    [LoggerMessage(3, LogLevel.Error, "The Redis script and the engine disagree on {Limit}: script allowed={Script}, engine allowed={Engine}")]
    private static partial void LogMismatch(ILogger logger, string limit, bool script, bool engine);
}
