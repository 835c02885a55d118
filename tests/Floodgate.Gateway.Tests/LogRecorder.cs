using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>A logger provider that keeps every line a gateway logs, with its category, level and exception.</summary>
internal sealed class LogRecorder : ILoggerProvider
{
    private readonly ConcurrentQueue<LogLine> _lines = new();

    public IReadOnlyList<LogLine> Lines => [.. _lines];

    public IReadOnlyList<LogLine> AtLeast(LogLevel level) => [.. _lines.Where(l => l.Level >= level)];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogRecorder recorder, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            recorder._lines.Enqueue(new LogLine(category, logLevel, eventId, formatter(state, exception), exception));
    }
}

/// <summary>One line a gateway logged.</summary>
internal sealed record LogLine(string Category, LogLevel Level, EventId Event, string Message, Exception? Exception);
