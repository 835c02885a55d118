using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Engine;

/// <summary>
/// <see cref="RateLimitEngine.RenewLeases"/> on a fake clock: the leases of a request still running outlive their timeout,
/// those of a request left alone (a dead process) do not, a lease found gone is counted and never taken again, and a
/// store that fails or cannot renew never throws into anything.
/// </summary>
public sealed class LeaseRenewalTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);
    private readonly FakeTimeProvider _time = new(Start);
    private readonly TestMeterFactory _meters = new();
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _renewals = new();

    public LeaseRenewalTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (_meters.Meters.Contains(instrument.Meter) && instrument.Name == "floodgate.lease.renewals")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "result")
                {
                    _renewals.AddOrUpdate((string)tag.Value!, value, (_, total) => total + value);
                }
            }
        });
        _listener.Start();
    }

    public void Dispose()
    {
        _listener.Dispose();
        _meters.Dispose();
    }

    private long Renewals(string result) => _renewals.GetValueOrDefault(result);

    private static RequestContext Request() => new() { Path = "/stream", Method = "GET", ClientIp = IPAddress.Parse("203.0.113.7") };

    private RateLimitEngine Engine(IRateLimitStore store, long permits = 2) =>
        new(new RateLimitPolicy([new RateLimitRule("streams", RateLimitTier.Global, Limit.Concurrency(permits, Timeout))]), store, _time, meterFactory: _meters);

    private MemoryStore Memory() => new(timeProvider: _time);

    /// <summary>Moves the clock on in steps of 100 ms, as time passes: the renewer's timer fires as it would.</summary>
    private void Run(TimeSpan duration)
    {
        for (var passed = TimeSpan.Zero; passed < duration; passed += TimeSpan.FromMilliseconds(100))
        {
            _time.Advance(TimeSpan.FromMilliseconds(100));
        }
    }

    [Fact]
    public async Task A_running_request_keeps_its_permit_past_three_timeouts_and_a_request_left_alone_does_not()
    {
        var engine = Engine(Memory());
        var streaming = await engine.EvaluateAsync(Request());
        Assert.True(streaming.HasLeases);
        engine.RenewLeases(streaming);
        var abandoned = await engine.EvaluateAsync(Request());
        Assert.True(abandoned.IsAllowed);
        Assert.False((await engine.EvaluateAsync(Request())).IsAllowed);
        Assert.Equal(1, engine.RenewingRequests);

        Run(Timeout * 3.5);

        // The abandoned lease (as a dead replica's) expired at its timeout; the running request's still holds.
        var third = await engine.EvaluateAsync(Request());
        Assert.True(third.IsAllowed);
        var refused = await engine.EvaluateAsync(Request());
        Assert.False(refused.IsAllowed);
        Assert.True(refused.IsCapacityRejection);
        Assert.InRange(Renewals("renewed"), 7, 11);
        Assert.Equal(0, Renewals("lost"));

        // The request ends: its lease is released and no longer renewed.
        await engine.ReleaseAsync(streaming);
        Assert.Equal(0, engine.RenewingRequests);
        var renewed = Renewals("renewed");
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
        Run(Timeout * 2);
        Assert.Equal(renewed, Renewals("renewed"));
        Assert.Equal(0, Renewals("lost"));
    }

    [Fact]
    public async Task A_lease_that_expired_while_the_process_stalled_is_counted_lost_and_not_taken_again()
    {
        var engine = Engine(Memory());
        var stalled = await engine.EvaluateAsync(Request());
        engine.RenewLeases(stalled);

        // No tick for longer than the timeout (the process was paused): the first renewal finds the lease expired.
        _time.Advance(Timeout * 1.5);
        Assert.Equal(1, Renewals("lost"));
        Assert.Equal(0, Renewals("renewed"));
        Assert.Equal(0, engine.RenewingRequests);

        // Its permit is free: two others take both, and the stalled request's renewal gave none back to it.
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
        Assert.False((await engine.EvaluateAsync(Request())).IsAllowed);

        // Releasing it when the request ends frees nothing that is not its own, and it is not renewed meanwhile.
        Run(TimeSpan.FromMilliseconds(500));
        await engine.ReleaseAsync(stalled);
        Assert.False((await engine.EvaluateAsync(Request())).IsAllowed);
        Assert.Equal(1, Renewals("lost"));
        Assert.Equal(0, Renewals("renewed"));
    }

    [Fact]
    public async Task A_renewal_that_fails_is_tried_again_at_the_next_tick_and_the_lease_survives()
    {
        var store = new ScriptedStore(Memory());
        var engine = Engine(store, permits: 1);
        var held = await engine.EvaluateAsync(Request());
        engine.RenewLeases(held);
        Run(TimeSpan.FromMilliseconds(400));

        // Unreachable for one tick, then back.
        store.Answer = LeaseRenewal.Failed;
        Run(TimeSpan.FromMilliseconds(300));
        Assert.True(Renewals("failed") >= 1);
        store.Answer = null;
        Run(Timeout * 3);

        Assert.False((await engine.EvaluateAsync(Request())).IsAllowed);
        Assert.Equal(0, Renewals("lost"));
        Assert.Equal(1, engine.RenewingRequests);
        await engine.ReleaseAsync(held);
    }

    [Fact]
    public async Task A_store_that_throws_while_renewing_counts_failures_and_throws_at_no_one()
    {
        var store = new ScriptedStore(Memory()) { Throws = true };
        var engine = Engine(store);
        var held = await engine.EvaluateAsync(Request());
        engine.RenewLeases(held);

        Run(Timeout * 2);

        // Every tick tried again; the lease ended at its timeout, as without renewal.
        Assert.True(Renewals("failed") >= 3);
        Assert.Equal(0, Renewals("renewed"));
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
        await engine.ReleaseAsync(held);
        Assert.Equal(0, engine.RenewingRequests);
    }

    [Fact]
    public async Task A_store_that_cannot_renew_is_asked_once_and_its_leases_end_at_their_timeout()
    {
        var store = new ScriptedStore(Memory()) { Answer = LeaseRenewal.NotSupported };
        var engine = Engine(store, permits: 1);
        var held = await engine.EvaluateAsync(Request());
        engine.RenewLeases(held);

        Run(Timeout * 3);
        Assert.Equal(1, Renewals("unsupported"));
        Assert.Equal(0, engine.RenewingRequests);
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
    }

    [Fact]
    public async Task A_lease_released_while_its_renewal_is_in_flight_is_not_counted_lost()
    {
        var store = new ScriptedStore(Memory()) { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var engine = Engine(store);
        var ending = await engine.EvaluateAsync(Request());
        var running = await engine.EvaluateAsync(Request());
        engine.RenewLeases(ending);
        engine.RenewLeases(running);
        Run(TimeSpan.FromMilliseconds(400));
        Assert.Equal(2, store.Started);

        // One request ends before the store answers: its renewal then finds the lease released.
        await engine.ReleaseAsync(ending);
        store.Gate.SetResult();
        await WaitUntilAsync(() => Renewals("renewed") == 1);

        // The next tick runs only once every renewal of the first has settled.
        Run(TimeSpan.FromMilliseconds(400));
        await WaitUntilAsync(() => Renewals("renewed") == 2);
        Assert.Equal(0, Renewals("lost"));
        Assert.Equal(1, engine.RenewingRequests);
        Assert.True((await engine.EvaluateAsync(Request())).IsAllowed);
        await engine.ReleaseAsync(running);
    }

    [Fact]
    public async Task A_tick_that_comes_while_renewals_are_in_flight_runs_as_soon_as_they_are_done()
    {
        var store = new ScriptedStore(Memory()) { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var engine = Engine(store, permits: 1);
        var held = await engine.EvaluateAsync(Request());
        engine.RenewLeases(held);
        Run(TimeSpan.FromMilliseconds(400));
        Assert.Equal(1, store.Started);

        // The store is slow: the ticks that come meanwhile send nothing more.
        Run(TimeSpan.FromMilliseconds(400));
        Assert.Equal(1, store.Started);

        // It answers: the tick it held back renews the lease at once, without waiting for the next.
        store.Gate.SetResult();
        await WaitUntilAsync(() => Renewals("renewed") == 2);
        Assert.Equal(2, store.Started);
        await engine.ReleaseAsync(held);
    }

    [Fact]
    public async Task Many_leases_are_renewed_at_one_tick_with_a_bounded_number_in_flight()
    {
        const int Requests = 600;
        var store = new ScriptedStore(Memory()) { Yields = true };
        var engine = Engine(store, permits: Requests);
        var results = new List<RateLimitResult>();
        for (var i = 0; i < Requests; i++)
        {
            var result = await engine.EvaluateAsync(Request());
            Assert.True(result.IsAllowed);
            engine.RenewLeases(result);
            results.Add(result);
        }

        // One tick: every lease is due. The renewals complete on the thread pool; the clock waits for them.
        _time.Advance(TimeSpan.FromMilliseconds(400));
        await WaitUntilAsync(() => Renewals("renewed") == Requests);
        Assert.InRange(store.MostInFlight, 2, 256);

        _time.Advance(TimeSpan.FromMilliseconds(400));
        await WaitUntilAsync(() => Renewals("renewed") == 2 * Requests);
        _time.Advance(TimeSpan.FromMilliseconds(400));
        await WaitUntilAsync(() => Renewals("renewed") == 3 * Requests);

        // 1.2 s in, every lease still holds.
        Assert.False((await engine.EvaluateAsync(Request())).IsAllowed);
        foreach (var result in results)
        {
            await engine.ReleaseAsync(result);
        }

        Assert.Equal(0, engine.RenewingRequests);
    }

    [Fact]
    public async Task Results_without_leases_and_results_already_released_are_not_renewed()
    {
        var engine = new RateLimitEngine(new RateLimitPolicy([new RateLimitRule("rate", RateLimitTier.Global, Limit.Gcra(Rate.Parse("1000/s")))]), Memory(), _time);
        var plain = await engine.EvaluateAsync(Request());
        Assert.False(plain.HasLeases);
        var before = GC.GetAllocatedBytesForCurrentThread();
        engine.RenewLeases(plain);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(0, engine.RenewingRequests);

        var leased = Engine(Memory());
        var held = await leased.EvaluateAsync(Request());
        await leased.ReleaseAsync(held);
        leased.RenewLeases(held);
        Assert.Equal(0, leased.RenewingRequests);
        Run(Timeout);
        Assert.Equal(0, Renewals("lost"));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        // Bounded polling for work on the thread pool; not a sleep for correctness.
        for (var i = 0; i < 1000 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition(), "The condition did not hold within 10 seconds.");
    }

    /// <summary>A memory store whose renewals answer as told: failing, throwing, unsupported, held at a gate, or asynchronous.</summary>
    private sealed class ScriptedStore(MemoryStore inner) : IRateLimitStore
    {
        private int _inFlight;
        private int _mostInFlight;
        private int _started;

        public LeaseRenewal? Answer { get; set; }

        public bool Throws { get; set; }

        public bool Yields { get; set; }

        public TaskCompletionSource? Gate { get; set; }

        public int Started => Volatile.Read(ref _started);

        public int MostInFlight => Volatile.Read(ref _mostInFlight);

        public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            inner.DecideAsync(checks, outcomes, cancellationToken);

        public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) => inner.TryDecide(checks, outcomes);

        public ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
            inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);

        public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
            inner.ReleaseAsync(check, leaseId, cancellationToken);

        public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _started);
            if (Throws)
            {
                throw new InvalidOperationException("The store broke.");
            }

            if (Answer is { } answer)
            {
                return new ValueTask<LeaseRenewal>(answer);
            }

            return Gate is not null || Yields ? SlowAsync(check, leaseId) : inner.RenewAsync(check, leaseId, cancellationToken);
        }

        private async ValueTask<LeaseRenewal> SlowAsync(RateLimitCheck check, long leaseId)
        {
            var now = Interlocked.Increment(ref _inFlight);
            int most;
            while ((most = Volatile.Read(ref _mostInFlight)) < now && Interlocked.CompareExchange(ref _mostInFlight, now, most) != most)
            {
            }

            try
            {
                if (Gate is { } gate)
                {
                    await gate.Task;
                }
                else
                {
                    await Task.Yield();
                }

                return await inner.RenewAsync(check, leaseId);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }

    private sealed class TestMeterFactory : IMeterFactory
    {
        public List<Meter> Meters { get; } = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            Meters.Add(meter);
            return meter;
        }

        public void Dispose() => Meters.ForEach(m => m.Dispose());
    }
}
