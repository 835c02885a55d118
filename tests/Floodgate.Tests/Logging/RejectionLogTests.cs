using System.Collections.Concurrent;
using System.Net;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Logging;

/// <summary>
/// The engine's rejection lines, enforced and shadow, whatever front door built the request: the subject, method and
/// path are logged escaped and cut, as structured values of an unchanged template; the rule's name as the policy wrote it.
/// </summary>
public sealed class RejectionLogTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 15, 12, 0, 0, TimeSpan.Zero));

    [Theory]
    [InlineData(RuleMode.Enforce, 1)]
    [InlineData(RuleMode.Shadow, 2)]
    public async Task A_rejection_logs_the_request_text_escaped(RuleMode mode, int eventId)
    {
        var logger = new StateLogger();
        var engine = new RateLimitEngine(
            new RateLimitPolicy([new RateLimitRule("per\\user", RateLimitTier.User, Limit.FixedWindow(Rate.Parse("1/min"))) { Mode = mode }]),
            new MemoryStore(timeProvider: _time),
            _time,
            logger);
        var request = new RequestContext
        {
            Subject = "alice\r\u001B[2Kforged",
            Method = "GE\u0085T",
            Path = "/a\n\u202E" + new string('p', 300),
            ClientIp = IPAddress.Parse("203.0.113.7"),
        };

        await engine.EvaluateAsync(request);
        await engine.EvaluateAsync(request);

        var (id, message, values) = Assert.Single(logger.Entries);
        Assert.Equal(eventId, id);
        Assert.Equal(@"alice\r\x1B[2Kforged", values["Identity"]);
        Assert.Equal(@"GE\x85T", values["Method"]);
        Assert.Equal(@"/a\n\u202E" + new string('p', 246) + "…(+54 chars)", values["Path"]);
        Assert.Equal("per\\user", values["Rule"]);
        Assert.Contains("{Identity}: {Method} {Path}", (string)values["{OriginalFormat}"]!, StringComparison.Ordinal);
        Assert.Contains(@"alice\r\x1B[2Kforged", message, StringComparison.Ordinal);
        Assert.DoesNotContain(message, char.IsControl);
    }

    [Fact]
    public async Task An_anonymous_rejection_logs_the_client_ip_as_it_is()
    {
        var logger = new StateLogger();
        var engine = new RateLimitEngine(
            new RateLimitPolicy([new RateLimitRule("ip", RateLimitTier.Edge, Limit.FixedWindow(Rate.Parse("1/min")))]),
            new MemoryStore(timeProvider: _time),
            _time,
            logger);
        var request = new RequestContext { Path = "/orders/1", ClientIp = IPAddress.Parse("2001:db8::1") };

        await engine.EvaluateAsync(request);
        await engine.EvaluateAsync(request);

        var (_, message, values) = Assert.Single(logger.Entries);
        Assert.Equal("2001:db8::1", values["Identity"]);
        Assert.Same(request.Path, values["Path"]);
        Assert.StartsWith("Rejected by edge rule ip for 2001:db8::1: GET /orders/1, retry after ", message, StringComparison.Ordinal);
    }

    /// <summary>Keeps each entry's event, formatted message and structured values.</summary>
    private sealed class StateLogger : ILogger<RateLimitEngine>
    {
        private readonly ConcurrentQueue<(int Event, string Message, IReadOnlyDictionary<string, object?> Values)> _entries = new();

        public IReadOnlyList<(int Event, string Message, IReadOnlyDictionary<string, object?> Values)> Entries => [.. _entries];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = ((IReadOnlyList<KeyValuePair<string, object?>>)state!).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
            _entries.Enqueue((eventId.Id, formatter(state, exception), values));
        }
    }
}
