using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Floodgate.Client.Pacing;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Client.Tests.Pacing;

/// <summary>A fake clock that counts the timers made on it, so a test knows when a wait has begun before it moves time.</summary>
internal sealed class CountingTime() : FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero))
{
    private int _timers;

    public int Timers => Volatile.Read(ref _timers);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        Interlocked.Increment(ref _timers);
        return base.CreateTimer(callback, state, dueTime, period);
    }
}

/// <summary>
/// The handler under the pacing handler in unit tests: answers each request with what the script says, and records when
/// (on the fake clock) and what it was sent.
/// </summary>
internal sealed class ScriptedServer(TimeProvider time, Func<HttpRequestMessage, int, Task<HttpResponseMessage>> script) : HttpMessageHandler
{
    private int _count;

    public ConcurrentQueue<(TimeSpan At, HttpMethod Method)> Sent { get; } = new();

    public int Count => Volatile.Read(ref _count);

    public DateTimeOffset Start { get; } = time.GetUtcNow();

    public static HttpResponseMessage Ok(string? policy = null, string? state = null)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK);
        if (policy is not null)
        {
            response.Headers.TryAddWithoutValidation("RateLimit-Policy", policy);
        }

        if (state is not null)
        {
            response.Headers.TryAddWithoutValidation("RateLimit", state);
        }

        return response;
    }

    /// <summary>A rejection as the gateway writes it: Retry-After and a problem+json body naming the rule.</summary>
    public static HttpResponseMessage Rejected(int retryAfter, HttpStatusCode status = HttpStatusCode.TooManyRequests, string rule = "per-user")
    {
        var response = new HttpResponseMessage(status)
        {
            Content = new StringContent(
                $$"""{"type":"about:blank","title":"Too Many Requests","status":{{(int)status}},"detail":"The user rule '{{rule}}' is over its limit; retry after {{retryAfter}} seconds.","tier":"user","rule":"{{rule}}","retryAfter":{{retryAfter}}}""",
                Encoding.UTF8,
                "application/problem+json"),
        };
        response.Headers.TryAddWithoutValidation("Retry-After", retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return response;
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var n = Interlocked.Increment(ref _count) - 1;
        Sent.Enqueue((time.GetUtcNow() - Start, request.Method));
        return script(request, n);
    }
}

/// <summary>The pacing handler over a scripted server, on a counting fake clock.</summary>
internal sealed class PacedInvoker : IDisposable
{
    public PacedInvoker(Func<HttpRequestMessage, int, Task<HttpResponseMessage>> script, Action<FloodgatePacingOptions>? configure = null, double jitter = 0.5)
    {
        Time = new CountingTime();
        Options = new FloodgatePacingOptions();
        configure?.Invoke(Options);
        Server = new ScriptedServer(Time, script);
        Client = new PacedClient("test", Time);
        Handler = new PacingHandler(Client, Options, new PacingMetrics(null), () => jitter) { InnerHandler = Server };
        Invoker = new HttpMessageInvoker(Handler);
    }

    public CountingTime Time { get; }

    public FloodgatePacingOptions Options { get; }

    public ScriptedServer Server { get; }

    public PacedClient Client { get; }

    public PacingHandler Handler { get; }

    public HttpMessageInvoker Invoker { get; }

    public Task<HttpResponseMessage> SendAsync(HttpMethod method, CancellationToken cancellationToken = default, Action<HttpRequestMessage>? prepare = null)
    {
        var request = new HttpRequestMessage(method, "http://api.test/items");
        prepare?.Invoke(request);
        return Invoker.SendAsync(request, cancellationToken);
    }

    /// <summary>Waits (in real time, bounded) until the handler's work has come to <paramref name="condition"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The handler did not get there within 10 s.");
            await Task.Delay(2);
        }
    }

    public void Dispose() => Invoker.Dispose();
}
