using System.Collections.Concurrent;
using System.Net;
using Floodgate.AspNetCore.Middleware;
using Floodgate.AspNetCore.Tests.Middleware;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Floodgate.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Queueing;

/// <summary>
/// A concurrency rule with a queue in the middleware, on real Kestrel and real HTTP clients: with 2 permits and a queue
/// of 3, five slow requests are all served in the order they came and a sixth is refused 503 with Retry-After; a
/// client that goes away while queued leaves the queue holding nothing; every lease granted is released. The store's
/// clock (and so the queue's) never moves: only releases wake the waiters.
/// </summary>
public sealed class ConcurrencyQueueTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Five_slow_requests_on_two_permits_and_a_queue_of_three_are_served_in_order_and_a_sixth_is_refused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new CountingStore(new MemoryStore(null, time));
        var gate = new Gate();
        await using var app = await StartAsync(store, gate, Limit.Concurrency(2, TimeSpan.FromMinutes(10)).WithQueue(3, TimeSpan.FromSeconds(30)));
        var engine = app.App.Services.GetRequiredService<FloodgateRuntime>().Engine;

        // Sent one after another, each in its place before the next: 1 and 2 run, 3, 4 and 5 wait in that order.
        var requests = new List<Task<HttpResponseMessage>>();
        for (var id = 1; id <= 5; id++)
        {
            requests.Add(app.Client.GetAsync(new Uri($"/slow?id={id}", UriKind.Relative)));
            if (id <= 2)
            {
                await gate.Entered(id).WaitAsync(Bound);
            }
            else
            {
                await Until(() => engine.Queues.Waiters == id - 2);
            }
        }

        // The queue is full: the sixth is refused at once, as a rejection without a queue is.
        using (var refused = await app.Client.GetAsync(new Uri("/slow?id=6", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        }

        // Each request that ends lets the next waiter in, in the order they came.
        for (var id = 1; id <= 5; id++)
        {
            gate.Finish(id);
            using var response = await requests[id - 1].WaitAsync(Bound);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            if (id + 2 <= 5)
            {
                await gate.Entered(id + 2).WaitAsync(Bound);
            }
        }

        Assert.Equal([1, 2, 3, 4, 5], gate.Order);
        await store.WaitReleasedAsync(5);
        Assert.Equal(5, store.Granted);
        Assert.Equal(0, engine.Queues.Waiters);
    }

    [Fact]
    public async Task A_client_that_goes_away_while_queued_leaves_the_queue_and_every_lease_is_released()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var store = new CountingStore(new MemoryStore(null, time));
        var gate = new Gate();
        await using var app = await StartAsync(store, gate, Limit.Concurrency(1, TimeSpan.FromMinutes(10)).WithQueue(1, TimeSpan.FromSeconds(30)), perUser: true);
        var engine = app.App.Services.GetRequiredService<FloodgateRuntime>().Engine;

        var first = app.Client.GetAsync(new Uri("/slow?id=1", UriKind.Relative));
        await gate.Entered(1).WaitAsync(Bound);

        // The second waits (holding its user-tier lease), then its client goes away.
        using (var abort = new CancellationTokenSource())
        {
            var second = app.Client.GetAsync(new Uri("/slow?id=2", UriKind.Relative), abort.Token);
            await Until(() => engine.Queues.Waiters == 1);
            await abort.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second);
        }

        await Until(() => engine.Queues.Waiters == 0);

        // Its place is free: a third waits there and is served when the first ends; the second never reached the app.
        var third = app.Client.GetAsync(new Uri("/slow?id=3", UriKind.Relative));
        await Until(() => engine.Queues.Waiters == 1);
        gate.Finish(1);
        gate.Finish(3);
        using (var answered = await first.WaitAsync(Bound))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }

        using (var answered = await third.WaitAsync(Bound))
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }

        Assert.Equal([1, 3], gate.Order);

        // Every lease granted (the per-user one and the service one of each request, and the second's per-user one) is
        // released: none is left to its timeout.
        await store.WaitReleasedAsync(store.Granted);
        Assert.Equal(5, store.Granted);
        Assert.Equal(0, engine.Queues.Waiters);
    }

    private static async Task<TestApp> StartAsync(CountingStore store, Gate gate, Limit limit, bool perUser = false)
    {
        RateLimitRule[] rules = perUser
            ? [new RateLimitRule("per-client", RateLimitTier.User, Limit.Concurrency(10, TimeSpan.FromMinutes(10))) { Key = [KeyPart.ClientIp] }, new RateLimitRule("reports", RateLimitTier.Service, limit)]
            : [new RateLimitRule("reports", RateLimitTier.Service, limit)];
        return await TestApp.StartAsync(
            o => o.Policy = new RateLimitPolicy(rules),
            a => a.MapGet("/slow", (Delegate)gate.HandleAsync),
            store: store);
    }

    /// <summary>Waits, a bounded while, for what the server does on its own threads.</summary>
    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition never held");
            await Task.Delay(5);
        }
    }

    /// <summary>An endpoint that records the order requests reach it and answers each when told.</summary>
    private sealed class Gate
    {
        private readonly ConcurrentDictionary<int, TaskCompletionSource> _entered = new();
        private readonly ConcurrentDictionary<int, TaskCompletionSource> _finish = new();
        private readonly ConcurrentQueue<int> _order = new();

        public int[] Order => [.. _order];

        public Task Entered(int id) => Signal(_entered, id).Task;

        public void Finish(int id) => Signal(_finish, id).TrySetResult();

        public async Task<string> HandleAsync(HttpContext context)
        {
            var id = int.Parse(context.Request.Query["id"]!, System.Globalization.CultureInfo.InvariantCulture);
            _order.Enqueue(id);
            Signal(_entered, id).TrySetResult();
            await Signal(_finish, id).Task.WaitAsync(context.RequestAborted);
            return "done";
        }

        private static TaskCompletionSource Signal(ConcurrentDictionary<int, TaskCompletionSource> signals, int id) =>
            signals.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
    }

    /// <summary>The in-memory store, counting the leases it grants and the releases it is sent.</summary>
    private sealed class CountingStore(MemoryStore inner) : DelegatingStore<MemoryStore>(inner)
    {
        private int _granted;
        private int _released;

        public int Granted => Volatile.Read(ref _granted);

        public override async ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
        {
            var decided = await Inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);
            // Only the stages decided: the rest of the outcomes may hold another request's ids.
            var end = decided == 0 ? 0 : stageEnds.Span[decided - 1];
            foreach (var outcome in outcomes.Span[..end])
            {
                Interlocked.Add(ref _granted, outcome.LeaseId != 0 ? 1 : 0);
            }

            return decided;
        }

        public override async ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
        {
            await Inner.ReleaseAsync(check, leaseId, cancellationToken);
            Interlocked.Increment(ref _released);
        }

        public Task WaitReleasedAsync(int count) => Until(() => Volatile.Read(ref _released) >= count && Volatile.Read(ref _released) == Granted);
    }
}
