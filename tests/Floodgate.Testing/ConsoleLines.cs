using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Floodgate.Testing;

/// <summary>
/// A logger provider that writes each entry with the console logger's own "simple" formatter, on one line as the gateway
/// configures it (colours off), and keeps the text a terminal would have been sent with the entry's structured values.
/// </summary>
public sealed class ConsoleLines : ILoggerProvider
{
    private readonly ServiceProvider _services;
    private readonly ConsoleFormatter _formatter;
    private readonly ConcurrentQueue<ConsoleLine> _lines = new();
    private readonly LogLevel _minimum;

    public ConsoleLines(LogLevel minimum = LogLevel.Trace)
    {
        _minimum = minimum;

        // The formatter the console logger itself is given: its implementation is internal, so it is taken from a container.
        _services = new ServiceCollection()
            .AddLogging(b => b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
                o.ColorBehavior = LoggerColorBehavior.Disabled;
            }))
            .BuildServiceProvider();
        _formatter = _services.GetServices<ConsoleFormatter>().Single(f => f.Name == ConsoleFormatterNames.Simple);
    }

    public IReadOnlyList<ConsoleLine> Lines => [.. _lines];

    public IReadOnlyList<ConsoleLine> Of(string category) => [.. _lines.Where(l => l.Category == category)];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() => _services.Dispose();

    private sealed class Logger(ConsoleLines owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner._minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            using var text = new StringWriter(CultureInfo.InvariantCulture);
            owner._formatter.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter), null, text);
            var values = new Dictionary<string, object?>(StringComparer.Ordinal);
            if (state is IReadOnlyList<KeyValuePair<string, object?>> structured)
            {
                foreach (var (name, value) in structured)
                {
                    values[name] = value;
                }
            }

            owner._lines.Enqueue(new ConsoleLine(category, logLevel, eventId, text.ToString(), values));
        }
    }
}

/// <summary>One entry: the console's text (ending in a line break) and the structured values, <c>{OriginalFormat}</c> the template.</summary>
public sealed record ConsoleLine(string Category, LogLevel Level, EventId Event, string Text, IReadOnlyDictionary<string, object?> Values)
{
    public string? Value(string name) => Values.TryGetValue(name, out var value) ? value?.ToString() : null;

    /// <summary>The text as a JSON string, every control visible: for an assertion's message.</summary>
    public string Shown => System.Text.Json.JsonSerializer.Serialize(Text);

    private static readonly System.Buffers.SearchValues<char> Controls = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Concat(Enumerable.Range(0x7F, 0x21)).Concat([0x061C, 0x200E, 0x200F]).Concat(Enumerable.Range(0x2028, 7)).Concat(Enumerable.Range(0x2066, 4)).Select(c => (char)c)]);

    /// <summary>Whether the text holds a character a terminal or a line-based collector acts on: a control, separator or bidirectional control.</summary>
    public bool HasControl() => Text.AsSpan(0, Text.Length - Environment.NewLine.Length).IndexOfAny(Controls) >= 0;
}
