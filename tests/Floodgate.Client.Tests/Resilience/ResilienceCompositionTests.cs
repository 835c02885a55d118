using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Client.Tests.Resilience;

/// <summary>
/// The pacing handler inside Microsoft.Extensions.Http.Resilience's standard handler, in the order docs/client.md gives
/// (resilience first, then <c>AddFloodgatePacing(o =&gt; o.MaxRetries = 0)</c>), against a real Kestrel server that
/// refuses with 429 or 503 and Retry-After.
/// </summary>
public sealed class ResilienceCompositionTests
{
    private const int RetryAfterSeconds = 2;

    [Theory]
    [InlineData(HttpStatusCode.TooManyRequests)]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    public async Task One_retrier_waits_Retry_After_once_per_refusal_and_the_request_then_succeeds(HttpStatusCode status)
    {
        await using var server = await RefusingServer.StartAsync(refusals: 1, status);
        using var services = Client(server.Address);
        var client = services.GetRequiredService<IHttpClientFactory>().CreateClient("orders");

        using var response = await client.GetAsync("/orders/1");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // Two attempts reached the server: the resilience retry's, not multiplied by the pacer's.
        var attempts = server.Attempts;
        Assert.Equal(2, attempts.Length);

        // Retry-After was honoured, and once: the pacer's stop and the resilience retry's delay run side by side, not one
        // after the other (that would be twice Retry-After apart).
        var gap = attempts[1] - attempts[0];
        Assert.True(gap >= TimeSpan.FromSeconds(RetryAfterSeconds - 0.05), $"attempts {gap.TotalSeconds:F2} s apart");
        Assert.True(gap < TimeSpan.FromSeconds(2 * RetryAfterSeconds), $"attempts {gap.TotalSeconds:F2} s apart: Retry-After waited twice");
    }

    [Fact]
    public async Task The_final_rejection_is_surfaced_with_its_problem_details_after_the_resilience_retries()
    {
        await using var server = await RefusingServer.StartAsync(refusals: int.MaxValue, HttpStatusCode.TooManyRequests);
        using var services = Client(server.Address, retries: 1);
        var client = services.GetRequiredService<IHttpClientFactory>().CreateClient("orders");

        using var response = await client.GetAsync("/orders/1");

        // The first attempt and one retry, each sent once: the last answer is the caller's, with its problem details.
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(2, server.Attempts.Length);
        var problem = await RateLimitProblem.ReadAsync(response);
        Assert.NotNull(problem);
        Assert.Equal("per-user", problem.Rule);
        Assert.Equal(TimeSpan.FromSeconds(RetryAfterSeconds), problem.RetryAfter);
    }

    private static ServiceProvider Client(Uri address, int retries = 3)
    {
        var services = new ServiceCollection();
        var orders = services.AddHttpClient("orders", c => c.BaseAddress = address);
        orders.AddStandardResilienceHandler(o =>
        {
            o.Retry.MaxRetryAttempts = retries;
            o.AttemptTimeout.Timeout = TimeSpan.FromSeconds(20);
            o.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(60);
            o.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(60);
        });
        orders.AddFloodgatePacing(o => o.MaxRetries = 0);
        return services.BuildServiceProvider();
    }

    /// <summary>A Kestrel server that refuses the first requests with Retry-After and a problem body, then answers 200.</summary>
    private sealed class RefusingServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentQueue<TimeSpan> _attempts = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly int _refusals;
        private readonly HttpStatusCode _status;
        private int _count;

        private RefusingServer(WebApplication app, int refusals, HttpStatusCode status)
        {
            _app = app;
            _refusals = refusals;
            _status = status;
        }

        public Uri Address { get; private set; } = null!;

        public TimeSpan[] Attempts => [.. _attempts];

        public static async Task<RefusingServer> StartAsync(int refusals, HttpStatusCode status)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var server = new RefusingServer(app, refusals, status);
            app.Run(server.AnswerAsync);
            await app.StartAsync();
            server.Address = new Uri(app.Urls.First());
            return server;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();

        private Task AnswerAsync(HttpContext context)
        {
            _attempts.Enqueue(_clock.Elapsed);
            if (Interlocked.Increment(ref _count) > _refusals)
            {
                return context.Response.WriteAsync("{\"id\":1}");
            }

            context.Response.StatusCode = (int)_status;
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.ContentType = "application/problem+json";
            return context.Response.WriteAsync(
                $$"""{"type":"about:blank","title":"Too Many Requests","status":{{(int)_status}},"detail":"The user rule 'per-user' is over its limit; retry after {{RetryAfterSeconds}} seconds.","tier":"user","rule":"per-user","retryAfter":{{RetryAfterSeconds}}}""");
        }
    }
}
