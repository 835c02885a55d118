using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Floodgate.Client.Tests.Pacing;

public sealed class PacingHandlerTests
{
    private static Task<HttpResponseMessage> Answer(HttpResponseMessage response) => Task.FromResult(response);

    [Fact]
    public async Task A_rejected_GET_waits_Retry_After_plus_its_jitter_then_is_sent_again()
    {
        // Jitter 0.5 of the first retry's spread (base 1 s): 2 s + 0.5 s.
        using var paced = new PacedInvoker((_, n) => Answer(n == 0 ? ScriptedServer.Rejected(2) : ScriptedServer.Ok()));
        var sending = paced.SendAsync(HttpMethod.Get);
        await PacedInvoker.UntilAsync(() => paced.Time.Timers >= 1); // the retry's wait

        paced.Time.Advance(TimeSpan.FromSeconds(2.4));
        Assert.Equal(1, paced.Server.Count);
        paced.Time.Advance(TimeSpan.FromSeconds(0.1));
        using var response = await sending;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([TimeSpan.Zero, TimeSpan.FromSeconds(2.5)], paced.Server.Sent.Select(s => s.At));
    }

    [Fact]
    public async Task A_rejected_POST_is_returned_at_once_with_its_problem_details()
    {
        using var paced = new PacedInvoker((_, _) => Answer(ScriptedServer.Rejected(7)));
        using var response = await paced.SendAsync(HttpMethod.Post);
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(1, paced.Server.Count);

        var problem = await RateLimitProblem.ReadAsync(response);
        Assert.NotNull(problem);
        Assert.Equal((429, "per-user", "user", TimeSpan.FromSeconds(7)), (problem.Status, problem.Rule, problem.Tier, problem.RetryAfter));
        Assert.Contains("over its limit", problem.Detail, StringComparison.Ordinal);

        // The body is still there for the caller.
        Assert.Contains("\"rule\":\"per-user\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_POST_is_retried_when_the_request_or_the_options_say_so()
    {
        using var perRequest = new PacedInvoker((_, n) => Answer(n == 0 ? ScriptedServer.Rejected(1) : ScriptedServer.Ok()), jitter: 0);
        var sending = perRequest.SendAsync(HttpMethod.Post, prepare: r => r.Options.Set(FloodgateRequestOptions.RetryRejections, true));
        await PacedInvoker.UntilAsync(() => perRequest.Time.Timers >= 1);
        perRequest.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await sending).StatusCode);
        Assert.Equal(2, perRequest.Server.Count);

        using var byOptions = new PacedInvoker((_, n) => Answer(n == 0 ? ScriptedServer.Rejected(1) : ScriptedServer.Ok()), o => o.RetryNonIdempotent = true, jitter: 0);
        sending = byOptions.SendAsync(HttpMethod.Post);
        await PacedInvoker.UntilAsync(() => byOptions.Time.Timers >= 1);
        byOptions.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, (await sending).StatusCode);

        // And a GET the request forbids is not.
        using var forbidden = new PacedInvoker((_, _) => Answer(ScriptedServer.Rejected(1)));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await forbidden.SendAsync(HttpMethod.Get, prepare: r => r.Options.Set(FloodgateRequestOptions.RetryRejections, false))).StatusCode);
        Assert.Equal(1, forbidden.Server.Count);
    }

    [Fact]
    public async Task A_Retry_After_past_the_cap_or_the_deadline_is_not_waited_for()
    {
        using var capped = new PacedInvoker((_, _) => Answer(ScriptedServer.Rejected(31)));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await capped.SendAsync(HttpMethod.Get)).StatusCode);
        Assert.Equal(1, capped.Server.Count);

        using var deadline = new PacedInvoker((_, _) => Answer(ScriptedServer.Rejected(10)), o => o.Deadline = TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await deadline.SendAsync(HttpMethod.Get)).StatusCode);
        Assert.Equal(1, deadline.Server.Count);
    }

    [Fact]
    public async Task After_the_last_retry_the_rejection_is_returned()
    {
        using var paced = new PacedInvoker((_, _) => Answer(ScriptedServer.Rejected(1)), o => o.MaxRetries = 2, jitter: 0);
        var sending = paced.SendAsync(HttpMethod.Get);
        for (var sent = 1; sent <= 2; sent++)
        {
            var count = sent;
            await PacedInvoker.UntilAsync(() => paced.Server.Count == count && paced.Time.Timers >= count);
            paced.Time.Advance(TimeSpan.FromSeconds(1));
        }

        using var response = await sending;
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(3, paced.Server.Count);
    }

    [Fact]
    public async Task A_paced_request_past_the_deadline_fails_at_once_as_a_429_without_being_sent()
    {
        // 10 per 100 s, 5 left for the next 50 s: one every 10 s. The deadline is 15 s.
        using var paced = new PacedInvoker((_, _) => Answer(ScriptedServer.Ok("\"p\";q=10;w=100", "\"p\";r=5;t=50")), o => o.Deadline = TimeSpan.FromSeconds(15));
        (await paced.SendAsync(HttpMethod.Get)).Dispose(); // the probe
        (await paced.SendAsync(HttpMethod.Get)).Dispose(); // the first slot, at once
        var inTurn = paced.SendAsync(HttpMethod.Get);       // in 10 s
        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => paced.SendAsync(HttpMethod.Get)); // in 20 s
        Assert.Equal(HttpStatusCode.TooManyRequests, failure.StatusCode);
        Assert.Contains("deadline", failure.Message, StringComparison.Ordinal);
        Assert.Equal(2, paced.Server.Count);

        paced.Time.Advance(TimeSpan.FromSeconds(10));
        (await inTurn).Dispose();
        Assert.Equal(3, paced.Server.Count);
    }

    [Fact]
    public async Task A_caller_who_cancels_while_waiting_leaves_the_queue_and_sends_nothing()
    {
        using var paced = new PacedInvoker((_, _) => Answer(ScriptedServer.Ok("\"p\";q=1;w=60", "\"p\";r=0;t=30")));
        (await paced.SendAsync(HttpMethod.Get)).Dispose();
        using var cancel = new CancellationTokenSource();
        var waiting = paced.SendAsync(HttpMethod.Get, cancel.Token);
        var next = paced.SendAsync(HttpMethod.Get);
        Assert.False(waiting.IsCompleted);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        paced.Time.Advance(TimeSpan.FromSeconds(30));
        (await next).Dispose();
        Assert.Equal(2, paced.Server.Count);
    }

    [Fact]
    public async Task A_caller_who_cancels_during_a_retry_wait_is_not_sent_again()
    {
        using var paced = new PacedInvoker((_, _) => Answer(ScriptedServer.Rejected(5)));
        using var cancel = new CancellationTokenSource();
        var sending = paced.SendAsync(HttpMethod.Get, cancel.Token);
        await PacedInvoker.UntilAsync(() => paced.Time.Timers >= 1);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        paced.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(1, paced.Server.Count);
    }

    [Fact]
    public async Task A_rejection_holds_back_the_other_callers_until_its_Retry_After()
    {
        var first = true;
        using var paced = new PacedInvoker((_, n) => Answer(Interlocked.Exchange(ref first, false) ? ScriptedServer.Rejected(3) : ScriptedServer.Ok()), jitter: 0);
        var rejected = paced.SendAsync(HttpMethod.Get);
        await PacedInvoker.UntilAsync(() => paced.Time.Timers >= 1);
        var others = Enumerable.Range(0, 5).Select(_ => paced.SendAsync(HttpMethod.Get)).ToArray();
        paced.Time.Advance(TimeSpan.FromSeconds(2.9));
        Assert.Equal(1, paced.Server.Count);

        paced.Time.Advance(TimeSpan.FromSeconds(0.1));
        foreach (var response in await Task.WhenAll([rejected, .. others]))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.All(paced.Server.Sent.Skip(1), s => Assert.True(s.At >= TimeSpan.FromSeconds(3)));
    }

    [Fact]
    public async Task Under_a_concurrency_limit_no_more_than_its_permits_are_in_flight()
    {
        var inFlight = 0;
        var most = 0;
        var release = new ConcurrentQueue<TaskCompletionSource>();
        using var paced = new PacedInvoker(async (_, _) =>
        {
            var now = Interlocked.Increment(ref inFlight);
            InterlockedMax(ref most, now);
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            release.Enqueue(gate);
            await gate.Task;
            Interlocked.Decrement(ref inFlight);
            return ScriptedServer.Ok("\"search\";q=2", "\"search\";r=0;t=30");
        });

        // The probe learns the limit; then 6 callers share 2 permits.
        var probe = paced.SendAsync(HttpMethod.Get);
        await PacedInvoker.UntilAsync(() => release.Count == 1);
        var callers = Enumerable.Range(0, 6).Select(_ => paced.SendAsync(HttpMethod.Get)).ToArray();
        release.TryDequeue(out var gate);
        gate!.SetResult();
        (await probe).Dispose();

        var done = 0;
        while (done < 6)
        {
            await PacedInvoker.UntilAsync(() => !release.IsEmpty);
            Assert.True(Volatile.Read(ref inFlight) <= 2);
            release.TryDequeue(out gate);
            gate!.SetResult();
            done++;
        }

        await Task.WhenAll(callers);
        Assert.Equal(2, most);
    }

    [Fact]
    public async Task A_request_that_needs_no_wait_allocates_nothing_in_the_handler()
    {
        var time = new CountingTime();
        var answer = Task.FromResult(ScriptedServer.Ok("\"p\";q=1000000;w=1", "\"p\";r=999999;t=1"));
        using var invoker = new HttpMessageInvoker(new Floodgate.Client.Pacing.PacingHandler(
            new Floodgate.Client.Pacing.PacedClient("test", time), new FloodgatePacingOptions(), new Floodgate.Client.Pacing.PacingMetrics(null))
        {
            InnerHandler = new CachedAnswer(answer),
        });
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://api.test/items");

        // A million a second: a slot every microsecond, and the fake clock moves a millisecond between requests.
        for (var i = 0; i < 100; i++)
        {
            await invoker.SendAsync(request, CancellationToken.None);
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        long allocated = 0;
        for (var i = 0; i < 1_000; i++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            _ = await invoker.SendAsync(request, CancellationToken.None);
            allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.Equal(0, allocated);
    }

    [Fact]
    public async Task Waits_and_rejections_are_measured()
    {
        using var listener = new MeterListener();
        var measured = new ConcurrentBag<(string Name, double Value, string? Reason)>();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Floodgate.Client")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => measured.Add((i.Name, v, Reason(tags))));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => measured.Add((i.Name, v, Reason(tags))));
        listener.Start();

        using var paced = new PacedInvoker((_, n) => Answer(n == 0 ? ScriptedServer.Rejected(1) : ScriptedServer.Ok()), jitter: 0);
        var sending = paced.SendAsync(HttpMethod.Get);
        await PacedInvoker.UntilAsync(() => paced.Time.Timers >= 1);
        paced.Time.Advance(TimeSpan.FromSeconds(1));
        (await sending).Dispose();

        Assert.Contains(("floodgate.client.rejections", 1.0, (string?)null), measured);
        Assert.Contains(("floodgate.client.waits", 1.0, "retry"), measured);
        Assert.Contains(("floodgate.client.wait.duration", 1.0, "retry"), measured);
    }

    [Fact]
    public void Options_that_cannot_work_are_refused_at_start_naming_the_client_and_the_option()
    {
        var services = new ServiceCollection();
        services.AddHttpClient("api").AddFloodgatePacing(o =>
        {
            o.Deadline = TimeSpan.Zero;
            o.MaxRetries = -1;
            o.RetryBaseDelay = TimeSpan.FromMinutes(5);
        });
        using var provider = services.BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains("Floodgate pacing of client 'api': Deadline must be positive", error.Message, StringComparison.Ordinal);
        Assert.Contains("MaxRetries must be between 0 and 20, not -1", error.Message, StringComparison.Ordinal);
        Assert.Contains("RetryBaseDelay must be positive and at most MaxRetryDelay", error.Message, StringComparison.Ordinal);

        var valid = new ServiceCollection();
        valid.AddHttpClient("api").AddFloodgatePacing(o => o.Deadline = Timeout.InfiniteTimeSpan);
        using var fine = valid.BuildServiceProvider();
        fine.GetRequiredService<IStartupValidator>().Validate();
        Assert.NotNull(fine.GetRequiredService<IHttpClientFactory>().CreateClient("api"));
    }

    /// <summary>Answers every request with one completed task, allocating nothing.</summary>
    private sealed class CachedAnswer(Task<HttpResponseMessage> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => answer;
    }

    private static string? Reason(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == "reason")
            {
                return tag.Value as string;
            }
        }

        return null;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }
}
