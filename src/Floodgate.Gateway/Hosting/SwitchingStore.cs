using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// The store the gateway decides in. A reload that changes the policy's <c>store</c> section opens the new store and
/// switches to it here, so every front door (the proxy, the Envoy service, readiness) follows without a restart.
/// </summary>
/// <remarks>
/// A decision runs on the store it started on. A concurrency lease must be released on the store that granted it, and
/// the lease id does not say which one that was, so while a replaced store is retiring a release goes to it and to the
/// store in force alike: releasing an id a store never granted does nothing (lease ids are random, so two stores do not
/// share one). A replaced store is retired for as long as a lease it granted can live, then disposed.
/// </remarks>
internal sealed partial class SwitchingStore : IRateLimitStore, IPermitReleaseNotifier, IDisposable
{
    private Action<Floodgate.Keys.StoreKey>? _permitReleased;

    // Guards the generations (the store in force and those retiring, with their timers) and disposal.
    private readonly Lock _generationsLock = new();
    private readonly TimeProvider _time;
    private ILogger _logger = NullLogger.Instance;
    private Generation _current;
    private Generation[] _retiring = [];
    private bool _disposed;

    public SwitchingStore(IRateLimitStore store, string kind, IDisposable? owned, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(store);
        _current = new Generation(store, kind, owned);
        _time = time;
        Listen(store, true);
    }

    /// <summary>The release notices of the store in force (Redis): the concurrency queues hear other replicas' releases.</summary>
    public event Action<Floodgate.Keys.StoreKey>? PermitReleased
    {
        add => _permitReleased += value;
        remove => _permitReleased -= value;
    }

    /// <summary>Where switches are logged; set once the host's logging is built.</summary>
    public ILogger Logger
    {
        get => _logger;
        set => _logger = value ?? NullLogger.Instance;
    }

    /// <summary>The store in force.</summary>
    public IRateLimitStore Current => Volatile.Read(ref _current).Store;

    /// <summary>The kind of the store in force: <c>memory</c>, <c>redis</c> or <c>custom</c>.</summary>
    public string Kind => Volatile.Read(ref _current).Kind;

    /// <summary>How many replaced stores are still retiring.</summary>
    public int Retiring => Volatile.Read(ref _retiring).Length;

    public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Current.DecideAsync(checks, outcomes, cancellationToken);

    // Forwarded, not left to the interface's default: that would split one round trip per request into one per tier.
    public ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default) =>
        Current.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);

    public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes) =>
        Current.TryDecide(checks, outcomes);

    public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        // The store in force first, then the retiring ones: Switch lists the replaced store as retiring before it puts the
        // new one in force, so the store that granted the lease is always among the two read here.
        var current = Current;
        var retiring = Volatile.Read(ref _retiring);
        return retiring.Length == 0
            ? current.ReleaseAsync(check, leaseId, cancellationToken)
            : ReleaseEverywhereAsync(current, retiring, check, leaseId, cancellationToken);
    }

    public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        // As a release: the lease id does not say which store granted it, and a store that did not answers NotHeld.
        var current = Current;
        var retiring = Volatile.Read(ref _retiring);
        return retiring.Length == 0
            ? current.RenewAsync(check, leaseId, cancellationToken)
            : RenewEverywhereAsync(current, retiring, check, leaseId, cancellationToken);
    }

    // The store in force: a reservation made on a store replaced since is corrected where the key's budget now lives.
    public ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken = default) =>
        Current.SettleAsync(check, delta, cancellationToken);

    /// <summary>
    /// Puts <paramref name="store"/> in force. The store it replaces keeps serving the decisions already started on it and
    /// the releases of its leases for <paramref name="retireAfter"/>, then is disposed.
    /// </summary>
    /// <returns>
    /// <see langword="false"/> when this store is already disposed (the host is stopping): then <paramref name="owned"/> is
    /// disposed here, and nothing changes.
    /// </returns>
    public bool Switch(IRateLimitStore store, string kind, IDisposable? owned, TimeSpan retireAfter)
    {
        ArgumentNullException.ThrowIfNull(store);
        Generation previous;
        lock (_generationsLock)
        {
            if (_disposed)
            {
                owned?.Dispose();
                return false;
            }

            previous = _current;
            Volatile.Write(ref _retiring, [.. _retiring, previous]);
            Volatile.Write(ref _current, new Generation(store, kind, owned));
            // Made under the lock, so that Dispose, which takes it too, always finds the timer to stop.
            previous.Timer = _time.CreateTimer(static state => ((RetireState)state!).Run(), new RetireState(this, previous), retireAfter, Timeout.InfiniteTimeSpan);
        }

        Listen(previous.Store, false);
        Listen(store, true);
        Log.Switched(_logger, previous.Kind, kind, retireAfter);
        return true;
    }

    private void Listen(IRateLimitStore store, bool listen)
    {
        if (store is IPermitReleaseNotifier notifier)
        {
            if (listen)
            {
                notifier.PermitReleased += ForwardRelease;
            }
            else
            {
                notifier.PermitReleased -= ForwardRelease;
            }
        }
    }

    private void ForwardRelease(Floodgate.Keys.StoreKey key) => Volatile.Read(ref _permitReleased)?.Invoke(key);

    public void Dispose()
    {
        Generation[] all;
        lock (_generationsLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            all = [_current, .. _retiring];
            Volatile.Write(ref _retiring, []);
        }

        foreach (var generation in all)
        {
            Close(generation);
        }
    }

    private void Retire(Generation generation)
    {
        lock (_generationsLock)
        {
            if (_disposed || Array.IndexOf(_retiring, generation) < 0)
            {
                return;
            }

            Volatile.Write(ref _retiring, Array.FindAll(_retiring, g => g != generation));
        }

        Close(generation);
    }

    private void Close(Generation generation)
    {
        try
        {
            generation.Timer?.Dispose();
            generation.Owned?.Dispose();
        }
        catch (Exception e)
        {
            // A store that fails to close must neither take the timer thread down nor keep the others open; its
            // connection is abandoned.
            Log.CloseFailed(_logger, generation.Kind, e);
        }
    }

    private static async ValueTask ReleaseEverywhereAsync(IRateLimitStore current, Generation[] retiring, RateLimitCheck check, long leaseId, CancellationToken cancellationToken)
    {
        // Side by side: a retiring store that cannot be reached must not hold up the release on the others.
        var releases = new Task[retiring.Length + 1];
        releases[0] = current.ReleaseAsync(check, leaseId, cancellationToken).AsTask();
        for (var i = 0; i < retiring.Length; i++)
        {
            releases[i + 1] = ReleaseQuietlyAsync(retiring[i].Store, check, leaseId, cancellationToken);
        }

        await Task.WhenAll(releases).ConfigureAwait(false);
    }

    private static async Task ReleaseQuietlyAsync(IRateLimitStore store, RateLimitCheck check, long leaseId, CancellationToken cancellationToken)
    {
        try
        {
            await store.ReleaseAsync(check, leaseId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A retiring store's failure is not the request's: its leases also end at their timeout.
        }
    }

    /// <summary>
    /// Renews the lease on the store in force and the retiring ones: renewed if any holds it, else failed if any could not
    /// be asked (it may be the one holding it), else not held (or not supported, when no store can renew).
    /// </summary>
    private static async ValueTask<LeaseRenewal> RenewEverywhereAsync(IRateLimitStore current, Generation[] retiring, RateLimitCheck check, long leaseId, CancellationToken cancellationToken)
    {
        var renewals = new Task<LeaseRenewal>[retiring.Length + 1];
        renewals[0] = RenewQuietlyAsync(current, check, leaseId, cancellationToken);
        for (var i = 0; i < retiring.Length; i++)
        {
            renewals[i + 1] = RenewQuietlyAsync(retiring[i].Store, check, leaseId, cancellationToken);
        }

        var answers = await Task.WhenAll(renewals).ConfigureAwait(false);
        return answers.Contains(LeaseRenewal.Renewed) ? LeaseRenewal.Renewed
            : answers.Contains(LeaseRenewal.Failed) ? LeaseRenewal.Failed
            : answers.Contains(LeaseRenewal.NotHeld) ? LeaseRenewal.NotHeld
            : LeaseRenewal.NotSupported;
    }

    private static async Task<LeaseRenewal> RenewQuietlyAsync(IRateLimitStore store, RateLimitCheck check, long leaseId, CancellationToken cancellationToken)
    {
        try
        {
            return await store.RenewAsync(check, leaseId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A retiring store that is closing (or closed) holds no lease it can renew.
            return LeaseRenewal.Failed;
        }
    }

    private sealed record RetireState(SwitchingStore Store, Generation Generation)
    {
        public void Run() => Store.Retire(Generation);
    }

    private sealed class Generation(IRateLimitStore store, string kind, IDisposable? owned)
    {
        public IRateLimitStore Store { get; } = store;

        public string Kind { get; } = kind;

        public IDisposable? Owned { get; } = owned;

        public ITimer? Timer { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Information, "The store changed ({Previous} to {Next}): decisions from now on are made in the new store; the previous one closes in {RetireAfter}")]
        public static partial void Switched(ILogger logger, string previous, string next, TimeSpan retireAfter);

        [LoggerMessage(21, LogLevel.Warning, "Closing a {Kind} store failed")]
        public static partial void CloseFailed(ILogger logger, string kind, Exception exception);
    }
}
