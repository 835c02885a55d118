using System.Net;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Queueing;

/// <summary>
/// Concurrency queues in the engine (<see cref="RateLimitEngine.EvaluateQueuedAsync"/>) on a fake clock: FIFO and LIFO
/// order, the queue's bound, the deadline, a waiter that goes away, a release waking the waiter of its own key only,
/// and the leases of earlier tiers released on every path.
/// </summary>
public sealed class PermitQueueTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 15, 12, 0, 0, TimeSpan.Zero));

    private static RequestContext Request(string subject = "alice", string path = "/report") =>
        new() { Path = path, Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7"), Subject = subject };

    private RateLimitEngine Engine(Limit service, params RateLimitRule[] more) =>
        new(new RateLimitPolicy([new RateLimitRule("reports", RateLimitTier.Service, service), .. more]), new MemoryStore(timeProvider: _time), _time, meterFactory: _meters);

    private readonly TestMeterFactory _meters = new();

    public void Dispose() => _meters.Dispose();

    /// <summary>The waits counted on <c>floodgate.queue.waits</c> by result, from this test's engines only.</summary>
    private Dictionary<string, long> CountWaits(Action run)
    {
        var counts = new Dictionary<string, long>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (_meters.Meters.Contains(instrument.Meter) && instrument.Name == "floodgate.queue.waits")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "result")
                {
                    lock (counts)
                    {
                        counts[(string)tag.Value!] = counts.GetValueOrDefault((string)tag.Value!) + value;
                    }
                }
            }
        });
        listener.Start();
        run();
        return counts;
    }

    private static Task<RateLimitResult> Queued(RateLimitEngine engine, RequestContext request, CancellationToken cancellationToken = default) =>
        engine.EvaluateQueuedAsync(engine.Policy, request, RateLimitTier.Edge, RateLimitTier.Global, ReadOnlyMemory<RateLimitCheck>.Empty, cancellationToken).AsTask();

    private static Limit Queue(int permits, int size, QueueOrder order, double seconds = 30) =>
        Limit.Concurrency(permits, TimeSpan.FromMinutes(1)).WithQueue(size, TimeSpan.FromSeconds(seconds), order);

    [Theory]
    [InlineData(QueueOrder.Fifo, new[] { 0, 1, 2 })]
    [InlineData(QueueOrder.Lifo, new[] { 2, 1, 0 })]
    public async Task Waiters_get_the_permits_in_the_queue_order_and_one_beyond_the_queue_is_rejected_at_once(QueueOrder order, int[] expected)
    {
        var engine = Engine(Queue(1, 3, order));
        var running = await Queued(engine, Request());
        Assert.True(running.IsAllowed);

        var waiters = new List<Task<RateLimitResult>>();
        for (var i = 0; i < 3; i++)
        {
            waiters.Add(Queued(engine, Request()));
        }

        Assert.All(waiters, w => Assert.False(w.IsCompleted));
        var full = await Queued(engine, Request());
        Assert.False(full.IsAllowed);
        Assert.True(full.IsCapacityRejection);
        Assert.True(full.Decision.RetryAfter > TimeSpan.Zero);

        var served = new List<int>();
        var holder = running;
        for (var turn = 0; turn < 3; turn++)
        {
            await engine.ReleaseAsync(holder);
            var next = await Task.WhenAny(waiters.Where(w => !served.Contains(waiters.IndexOf(w)))).WaitAsync(Bound);
            holder = await next;
            Assert.True(holder.IsAllowed);
            served.Add(waiters.IndexOf(next));

            // Only one permit was freed: every other waiter still waits.
            Assert.Equal(2 - turn, waiters.Count(w => !w.IsCompleted));
        }

        Assert.Equal(expected, served);
        await engine.ReleaseAsync(holder);
        Assert.Equal(0, engine.Queues.Keys);
    }

    [Fact]
    public void Each_wait_is_counted_by_how_it_ended()
    {
        var counts = CountWaits(() =>
        {
            var engine = Engine(Queue(1, 1, QueueOrder.Fifo, seconds: 2));
            var running = Queued(engine, Request()).GetAwaiter().GetResult();
            var served = Queued(engine, Request());
            Assert.False(Queued(engine, Request()).GetAwaiter().GetResult().IsAllowed);
            engine.ReleaseAsync(running).AsTask().GetAwaiter().GetResult();
            var admitted = served.WaitAsync(Bound).GetAwaiter().GetResult();
            var late = Queued(engine, Request());
            _time.Advance(TimeSpan.FromSeconds(2));
            Assert.False(late.WaitAsync(Bound).GetAwaiter().GetResult().IsAllowed);
            engine.ReleaseAsync(admitted).AsTask().GetAwaiter().GetResult();
        });
        Assert.Equal(1, counts.GetValueOrDefault("admitted"));
        Assert.Equal(1, counts.GetValueOrDefault("full"));
        Assert.Equal(1, counts.GetValueOrDefault("timed_out"));
    }

    [Fact]
    public async Task A_waiter_is_rejected_at_its_deadline_and_leaves_the_queue_holding_nothing()
    {
        var user = new RateLimitRule("per-user", RateLimitTier.User, Limit.Concurrency(1)) { Key = [KeyPart.Subject] };
        var engine = Engine(Queue(1, 2, QueueOrder.Fifo, seconds: 2), user);
        var running = await Queued(engine, Request("bob"));
        var waiting = Queued(engine, Request("alice"));
        Assert.False(waiting.IsCompleted);

        // The poll lets it try now and then (the permit is still taken), and it keeps waiting.
        _time.Advance(TimeSpan.FromSeconds(1.9));
        Assert.False(waiting.IsCompleted);
        Assert.True(engine.Queues.Polls > 0);

        _time.Advance(TimeSpan.FromMilliseconds(200));
        var result = await waiting.WaitAsync(Bound);
        Assert.False(result.IsAllowed);
        Assert.Equal("reports", result.Decision.Rule!.Name);
        Assert.True(result.IsCapacityRejection);
        Assert.False(result.HasLeases);
        Assert.Equal(0, engine.Queues.Keys);

        // The user tier's lease alice held while she waited was released: she gets it again at once (with no queue).
        await engine.ReleaseAsync(running);
        var again = await Queued(engine, Request("alice"));
        Assert.True(again.IsAllowed);
    }

    [Fact]
    public async Task A_waiter_that_goes_away_leaves_the_queue_and_releases_what_it_held()
    {
        var user = new RateLimitRule("per-user", RateLimitTier.User, Limit.Concurrency(1)) { Key = [KeyPart.Subject] };
        var engine = Engine(Queue(1, 1, QueueOrder.Fifo), user);
        var running = await Queued(engine, Request("bob"));
        using var abort = new CancellationTokenSource();
        var waiting = Queued(engine, Request("alice"), abort.Token);
        Assert.False(waiting.IsCompleted);

        // The queue of one is full while alice waits.
        Assert.False((await Queued(engine, Request("carol"))).IsAllowed);

        await abort.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Bound));
        Assert.Equal(0, engine.Queues.Keys);

        // Her user lease is free (her own rule has one permit), and her place is free: carol waits and is served.
        var carol = Queued(engine, Request("carol"));
        Assert.False(carol.IsCompleted);
        await engine.ReleaseAsync(running);
        var served = await carol.WaitAsync(Bound);
        Assert.True(served.IsAllowed);
        await engine.ReleaseAsync(served);
        var alice = await Queued(engine, Request("alice"));
        Assert.True(alice.IsAllowed);
    }

    [Fact]
    public async Task A_release_wakes_a_waiter_of_its_own_key_only()
    {
        var byPath = Queue(1, 2, QueueOrder.Fifo);
        var engine = new RateLimitEngine(
            new RateLimitPolicy([new RateLimitRule("by-path", RateLimitTier.Service, byPath) { Key = [KeyPart.Parse("path")] }]),
            new MemoryStore(timeProvider: _time),
            _time);
        var a = await Queued(engine, Request(path: "/a"));
        var b = await Queued(engine, Request(path: "/b"));
        var waitingA = Queued(engine, Request(path: "/a"));
        var waitingB = Queued(engine, Request(path: "/b"));
        Assert.Equal(2, engine.Queues.Keys);

        await engine.ReleaseAsync(b);
        var servedB = await waitingB.WaitAsync(Bound);
        Assert.True(servedB.IsAllowed);
        Assert.False(waitingA.IsCompleted);

        await engine.ReleaseAsync(a);
        Assert.True((await waitingA.WaitAsync(Bound)).IsAllowed);
    }

    [Fact]
    public async Task A_request_with_no_queue_is_rejected_at_once_and_evaluate_without_queueing_never_waits()
    {
        var engine = Engine(Queue(1, 5, QueueOrder.Fifo));
        var running = await Queued(engine, Request());

        // EvaluateAsync (not queued) answers the rejection as before.
        var plain = await engine.EvaluateAsync(Request());
        Assert.False(plain.IsAllowed);
        Assert.Equal(0, engine.Queues.Keys);

        var noQueue = Engine(Limit.Concurrency(1));
        var first = await Queued(noQueue, Request());
        var second = Queued(noQueue, Request());
        Assert.True(second.IsCompleted);
        Assert.False((await second).IsAllowed);
        await noQueue.ReleaseAsync(first);
        await engine.ReleaseAsync(running);
    }

    [Fact]
    public async Task A_release_no_one_announced_is_found_by_the_queue_poll_one_interval_later()
    {
        var engine = Engine(Queue(1, 2, QueueOrder.Fifo));
        var running = await Queued(engine, Request());
        var waiting = Queued(engine, Request());

        // Released in the store, not through the engine (as a notice lost on the way): no one is woken.
        var (check, leaseId) = running.Leases![0];
        await engine.Store.ReleaseAsync(check, leaseId);
        Assert.False(waiting.IsCompleted);

        _time.Advance(Floodgate.Queueing.PermitQueues.DefaultPollInterval);
        var served = await waiting.WaitAsync(Bound);
        Assert.True(served.IsAllowed);
        Assert.Equal(1, engine.Queues.Polls);
    }

    [Theory]
    [InlineData(-1, 1.0)]
    [InlineData(100_001, 1.0)]
    [InlineData(1, 0.0)]
    [InlineData(1, 601.0)]
    public void A_queue_out_of_bounds_is_refused(int size, double seconds) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Limit.Concurrency(1).WithQueue(size, TimeSpan.FromSeconds(seconds)));

    [Fact]
    public void Only_a_concurrency_limit_queues_and_the_queue_survives_a_new_rate()
    {
        Assert.Throws<InvalidOperationException>(() => Limit.Gcra(Rate.Parse("10/s")).WithQueue(1, TimeSpan.FromSeconds(1)));
        var limit = Limit.Concurrency(2).WithQueue(3, TimeSpan.FromSeconds(2), QueueOrder.Lifo);
        var wider = limit.WithRate(new Rate(4, 1, RateUnit.Second));
        Assert.Equal((3, TimeSpan.FromSeconds(2), QueueOrder.Lifo), (wider.QueueSize, wider.QueueTimeout, wider.QueueOrder));
        Assert.Equal("concurrency 2 lease 30s queue 3 2s lifo", limit.ToString());
    }

    private sealed class TestMeterFactory : System.Diagnostics.Metrics.IMeterFactory
    {
        public List<System.Diagnostics.Metrics.Meter> Meters { get; } = [];

        public System.Diagnostics.Metrics.Meter Create(System.Diagnostics.Metrics.MeterOptions options)
        {
            var meter = new System.Diagnostics.Metrics.Meter(options);
            lock (Meters)
            {
                Meters.Add(meter);
            }

            return meter;
        }

        public void Dispose() => Meters.ForEach(m => m.Dispose());
    }
}
