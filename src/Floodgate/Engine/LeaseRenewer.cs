using System.Diagnostics.Metrics;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Engine;

/// <summary>
/// Renews the concurrency leases of the requests still running, so that a lease lives as long as its request (a
/// WebSocket, an event stream, a long upload) and not only its timeout; one per engine, on one timer.
/// </summary>
/// <remarks>
/// <para>
/// A request's leases are listed when its front door says it is admitted (<see cref="RateLimitEngine.RenewLeases"/>) and
/// unlisted when they are released. Listing and unlisting link the request's <see cref="LeaseBag"/> into an intrusive
/// list under one lock: nothing is allocated, and a request without leases never gets here. Each bag is renewed about
/// every third of its shortest lease timeout (at least <see cref="ShortestInterval"/>): the timer ticks at the shortest
/// interval listed, and each tick renews the bags due by the middle of the next, at most <see cref="MaxInFlight"/>
/// renewals in flight at once (a remote store pipelines them on its connection); a tick that comes while the last one's
/// renewals are in flight runs when they are done. Two renewals of a lease are thus at most half its timeout apart, and
/// a failed one is tried again at the next tick, within five sixths.
/// </para>
/// <para>
/// A renewal extends a lease by one timeout from the store's now: a process that stops renewing (it crashed, or stalls)
/// leaves its leases to expire at most one timeout after their last renewal. A renewal that finds its lease gone (it
/// expired while this process stalled, or the store lost it) does not take it again, since its permit may be another
/// request's now: the lease is counted lost, logged, and no longer renewed; its request goes on. A renewal that fails
/// (the store unreachable, its breaker open) is tried again at the next tick. Nothing here ever throws into a request.
/// </para>
/// </remarks>
internal sealed partial class LeaseRenewer
{
    /// <summary>The most renewals in flight at once.</summary>
    internal const int MaxInFlight = 256;

    /// <summary>The shortest interval between two renewals of a lease, whatever its timeout.</summary>
    internal static readonly TimeSpan ShortestInterval = TimeSpan.FromMilliseconds(10);

    private static readonly long LogInterval = TimeSpan.FromSeconds(1).Ticks;

    private readonly IRateLimitStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _renewals;
    private readonly long _origin;
    private readonly Lock _lock = new();

    // The tick's due leases, reused: ticks never overlap (a tick that comes while one is renewing waits for it: _missed).
    private readonly List<(LeaseBag Bag, int Index)> _due = [];
    private readonly List<Task> _inFlight = [];

    private LeaseBag? _first;
    private int _listed;
    private ITimer? _timer;

    // The timer's period, in ticks; 0 while it is stopped. The time of the last tick, or of the timer's start.
    private long _period;
    private long _mark;
    private bool _renewing;
    private bool _missed;
    private long _lastLog = long.MinValue / 2;
    private long _lostSinceLog;

    public LeaseRenewer(IRateLimitStore store, TimeProvider time, ILogger logger, Meter meter)
    {
        _store = store;
        _time = time;
        _logger = logger;
        _origin = time.GetTimestamp();
        _renewals = meter.CreateCounter<long>(
            "floodgate.lease.renewals",
            "{renewal}",
            "Renewals of the concurrency leases of requests still running, by rule and result: renewed, lost (the lease had expired or was gone: no longer renewed), failed (the store could not be asked: tried again), unsupported (the store cannot renew).");
    }

    /// <summary>How many requests' leases are listed.</summary>
    public int Listed
    {
        get
        {
            lock (_lock)
            {
                return _listed;
            }
        }
    }

    /// <summary>Lists <paramref name="bag"/>'s leases, or (listed already) the ones it has gained since.</summary>
    public void Add(LeaseBag bag)
    {
        var interval = Math.Max(bag.ShortestTimeout().Ticks / 3, ShortestInterval.Ticks);
        lock (_lock)
        {
            if (bag.Released || bag.Count == 0)
            {
                return;
            }

            if (_period == 0 || interval < _period)
            {
                Schedule(interval);
            }

            // Due one interval after the last tick rather than after now: a clock read costs more than the rest of a listing
            // on a virtual machine, and the last tick is at most a period before now, so the lease is renewed early if at
            // all (a request that happens to be running at the next tick), never late.
            var due = _mark + interval;
            if (!bag.Listed)
            {
                bag.Listed = true;
                bag.Next = _first;
                bag.Previous = null;
                if (_first is not null)
                {
                    _first.Previous = bag;
                }

                _first = bag;
                _listed++;
                bag.DueAt = due;
                bag.Active = bag.Count;
            }
            else
            {
                // Listed again after the bag gained leases (a front door that combined results late): count what is renewed.
                bag.DueAt = Math.Min(bag.DueAt, due);
                bag.Active = 0;
                for (var i = 0; i < bag.Count; i++)
                {
                    bag.Active += bag.IsRenewed(i) ? 1 : 0;
                }
            }

            bag.Interval = interval;
            bag.Renewing = bag.Count;
        }
    }

    /// <summary>Unlists <paramref name="bag"/> for good: its leases are being released.</summary>
    public void Remove(LeaseBag bag)
    {
        lock (_lock)
        {
            bag.Released = true;
            Unlink(bag);

            // The timer is left to find the list empty at its next tick: stopping it here would cost every request that
            // ends alone a timer change.
        }
    }

    private long Now() => _time.GetElapsedTime(_origin).Ticks;

    /// <summary>Sets the timer to tick every <paramref name="period"/>, starting one period from now. Under the lock.</summary>
    private void Schedule(long period)
    {
        _period = period;
        _mark = Now();
        var span = TimeSpan.FromTicks(period);
        if (_timer is null)
        {
            // Made without the listing request's execution context, which the timer would otherwise keep alive.
            if (ExecutionContext.IsFlowSuppressed())
            {
                _timer = _time.CreateTimer(static state => ((LeaseRenewer)state!).Tick(), this, span, span);
            }
            else
            {
                using (ExecutionContext.SuppressFlow())
                {
                    _timer = _time.CreateTimer(static state => ((LeaseRenewer)state!).Tick(), this, span, span);
                }
            }
        }
        else
        {
            _timer.Change(span, span);
        }
    }

    private void Unlink(LeaseBag bag)
    {
        if (!bag.Listed)
        {
            return;
        }

        bag.Listed = false;
        if (bag.Previous is { } previous)
        {
            previous.Next = bag.Next;
        }
        else
        {
            _first = bag.Next;
        }

        if (bag.Next is { } next)
        {
            next.Previous = bag.Previous;
        }

        bag.Previous = bag.Next = null;
        _listed--;
    }

    private void Tick()
    {
        lock (_lock)
        {
            // A tick whose renewals are still in flight (a slow store) is not overtaken: this one runs when they are done.
            if (_renewing)
            {
                _missed = true;
                return;
            }

            if (_period == 0)
            {
                return;
            }

            // A bag due before the next tick's midpoint is renewed now: at most half a tick early, and never more than
            // half a tick late, so two renewals are at most one and a half intervals (half a timeout) apart.
            var now = Now();
            _mark = now;
            var horizon = now + (_period / 2);
            var shortest = long.MaxValue;
            for (var bag = _first; bag is not null; bag = bag.Next)
            {
                shortest = Math.Min(shortest, bag.Interval);
                if (bag.DueAt > horizon)
                {
                    continue;
                }

                bag.DueAt = now + bag.Interval;
                for (var i = 0; i < bag.Renewing; i++)
                {
                    if (bag.IsRenewed(i))
                    {
                        _due.Add((bag, i));
                    }
                }
            }

            if (_first is null)
            {
                _period = 0;
                _timer!.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
            else if (shortest != _period)
            {
                // The request with the shortest timeout has ended: tick no more often than the rest need.
                Schedule(shortest);
            }

            if (_due.Count == 0)
            {
                return;
            }

            _renewing = true;
        }

        _ = RenewDueAsync();
    }

    private async Task RenewDueAsync()
    {
        try
        {
            // Bounded, so a store that never answers cannot hold the renewals back for longer than the next is due.
            using var bound = new CancellationTokenSource(TimeSpan.FromTicks(Math.Max(Volatile.Read(ref _period), ShortestInterval.Ticks)), _time);
            foreach (var (bag, index) in _due)
            {
                var (check, leaseId) = bag[index];
                ValueTask<LeaseRenewal> pending;
                try
                {
                    pending = _store.RenewAsync(check, leaseId, bound.Token);
                }
                catch (Exception e)
                {
                    Settle(bag, index, LeaseRenewal.Failed, e);
                    continue;
                }

                if (pending.IsCompleted)
                {
                    Settle(bag, index, pending);
                    continue;
                }

                _inFlight.Add(AwaitAsync(bag, index, pending));
                if (_inFlight.Count == MaxInFlight)
                {
                    await Task.WhenAll(_inFlight).ConfigureAwait(false);
                    _inFlight.Clear();
                }
            }

            await Task.WhenAll(_inFlight).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Never thrown at the timer: what was not renewed is tried again at the next tick.
            LogRenewalFailed(_logger, e);
        }
        finally
        {
            _inFlight.Clear();
            _due.Clear();
            bool missed;
            lock (_lock)
            {
                _renewing = false;
                missed = _missed;
                _missed = false;
            }

            if (missed)
            {
                Tick();
            }
        }
    }

    private async Task AwaitAsync(LeaseBag bag, int index, ValueTask<LeaseRenewal> pending)
    {
        LeaseRenewal renewal;
        Exception? failure = null;
        try
        {
            renewal = await pending.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            (renewal, failure) = (LeaseRenewal.Failed, e);
        }

        Settle(bag, index, renewal, failure);
    }

    private void Settle(LeaseBag bag, int index, ValueTask<LeaseRenewal> completed)
    {
        try
        {
            Settle(bag, index, completed.GetAwaiter().GetResult());
        }
        catch (Exception e)
        {
            Settle(bag, index, LeaseRenewal.Failed, e);
        }
    }

    private void Settle(LeaseBag bag, int index, LeaseRenewal renewal, Exception? failure = null)
    {
        string result;
        var lost = false;
        lock (_lock)
        {
            // Released while its renewal was in flight: what the store said no longer matters (a lease released first is
            // simply not held), and is not counted.
            if (!bag.Listed)
            {
                return;
            }

            switch (renewal)
            {
                case LeaseRenewal.Renewed:
                    result = "renewed";
                    break;
                case LeaseRenewal.NotHeld:
                    result = "lost";
                    lost = bag.Stop(index);
                    _lostSinceLog += lost ? 1 : 0;
                    break;
                case LeaseRenewal.Failed:
                    // Tried again at the next tick: the lease still has two thirds of its timeout at most to run.
                    result = "failed";
                    bag.DueAt = 0;
                    break;
                default:
                    result = "unsupported";
                    bag.Stop(index);
                    break;
            }

            if (bag.Active == 0)
            {
                Unlink(bag);
            }
        }

        var rule = bag.RuleOf(index);
        if (rule is null)
        {
            _renewals.Add(1, new KeyValuePair<string, object?>("result", result));
        }
        else
        {
            _renewals.Add(1, new KeyValuePair<string, object?>("result", result), new KeyValuePair<string, object?>("rule", rule));
        }

        if (lost || failure is not null)
        {
            Report(rule, failure);
        }
    }

    /// <summary>Logs a lost lease or a store that threw, at most one line a second, with how many leases were lost since the last.</summary>
    private void Report(string? rule, Exception? failure)
    {
        long lostSince;
        lock (_lock)
        {
            var now = Now();
            if (now - _lastLog < LogInterval)
            {
                return;
            }

            _lastLog = now;
            lostSince = _lostSinceLog;
            if (failure is null)
            {
                _lostSinceLog = 0;
            }
        }

        if (failure is not null)
        {
            LogStoreThrew(_logger, _store.GetType().Name, failure);
        }
        else
        {
            LogLost(_logger, rule ?? "(pre-check)", lostSince);
        }
    }

    [LoggerMessage(10, LogLevel.Warning, "A concurrency lease of rule {Rule} had expired, or was gone from the store, while its request was still running (this process stalled past the lease timeout, or the store lost it): the request goes on without its permit, and the lease is no longer renewed ({Lost} leases lost since the last such line)")]
    private static partial void LogLost(ILogger logger, string rule, long lost);

    [LoggerMessage(11, LogLevel.Warning, "The store {Store} threw while renewing a concurrency lease; it is tried again at the next renewal")]
    private static partial void LogStoreThrew(ILogger logger, string store, Exception exception);

    [LoggerMessage(12, LogLevel.Error, "Renewing concurrency leases failed; they are tried again at the next renewal")]
    private static partial void LogRenewalFailed(ILogger logger, Exception exception);
}
