using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Floodgate.Redis.Tests;

/// <summary>Keeps every message the store logs, formatted, with its exception's message.</summary>
internal sealed class ListLogger : ILogger<RedisStore>
{
    private readonly ConcurrentQueue<string> _messages = new();

    public IReadOnlyCollection<string> Messages => _messages.ToArray();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _messages.Enqueue($"{logLevel}: {formatter(state, exception)}{(exception is null ? string.Empty : " (" + exception.GetType().Name + ": " + exception.Message + ")")}");
}
