using System.Diagnostics;
using System.Diagnostics.Metrics;
using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Logging;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Floodgate.Engine;

/// <summary>
/// Decides requests against a policy: tier by tier, stopping at the first tier that rejects so later tiers are not
/// charged. The matching rules of every tier go to the store in one call (<see cref="IRateLimitStore.DecideStagesAsync"/>),
/// so a remote store decides a request in one round trip.
/// </summary>
/// <remarks>
/// <para>
/// Thread-safe. The policy can be swapped at any time with <see cref="UpdatePolicy"/>; a request in flight finishes
/// on the policy it started with.
/// </para>
/// <para>
/// Every decision is counted on the <c>floodgate.decisions</c> counter of the <c>Floodgate</c> meter, tagged with tier,
/// rule and outcome. Rejections are logged with tier, rule and identity, at most 20 at once and 10 a second; the rest are
/// counted and reported with the next log line. The identity, method and path are logged escaped of control characters
/// and cut to 256 characters (docs/logging.md).
/// </para>
/// </remarks>
public sealed partial class RateLimitEngine
{
    /// <summary>The name of the meter the engine reports on.</summary>
    public const string MeterName = "Floodgate";

    private static readonly string[] TierNames = ["edge", "user", "service", "global"];
    private static readonly Meter SharedMeter = new(MeterName);

    private readonly IRateLimitStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Counter<long> _decisions;
    private RateLimitPolicy _policy;
    private IOverrideStore? _overrides;
    private Bans.IBanStore? _bans;
    private IRejectionObserver? _rejectionObserver;
    private readonly LogBudget _logBudget;
    private readonly LeaseRenewer _renewer;
    private readonly Queueing.PermitQueues _queues;
    private readonly Counter<long> _queueWaits;
    private readonly Histogram<double> _queueWaitDuration;
    private readonly Costs.CostMetrics _costMetrics;

    /// <summary>Creates an engine.</summary>
    /// <param name="policy">The rules.</param>
    /// <param name="store">Where state lives.</param>
    /// <param name="timeProvider">The clock for log budgeting; the system clock by default.</param>
    /// <param name="logger">Where rejections are logged.</param>
    /// <param name="meterFactory">Creates the meter; a shared static meter by default.</param>
    public RateLimitEngine(RateLimitPolicy policy, IRateLimitStore store, TimeProvider? timeProvider = null, ILogger<RateLimitEngine>? logger = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(store);
        _policy = policy;
        _store = store;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _logBudget = new LogBudget(_time);
        var meter = meterFactory?.Create(MeterName) ?? SharedMeter;
        _decisions = meter.CreateCounter<long>("floodgate.decisions", "{decision}", "Rate limit decisions by tier, rule and outcome.");
        _renewer = new LeaseRenewer(store, _time, _logger, meter);
        _queues = Queueing.PermitQueues.For(store, _time);
        _queueWaits = meter.CreateCounter<long>("floodgate.queue.waits", "{request}", "Requests that waited in a concurrency queue, by rule and result: admitted, timed_out, full, canceled or rejected (by another rule on a later try).");
        _queueWaitDuration = meter.CreateHistogram<double>("floodgate.queue.wait_duration", "s", "How long requests waited in a concurrency queue, by rule and result.");
        _costMetrics = new Costs.CostMetrics(meter);
        _distinctOver = meter.CreateCounter<long>("floodgate.distinct.over", "{request}", "Requests whose key had shown more distinct values than a distinct rule's limit, by rule and action (reject, ban, flag).");
        _distinctFailures = meter.CreateCounter<long>("floodgate.distinct.failures", "{request}", "Distinct counts the store could not make (the request went on uncounted), by rule.");
    }

    /// <summary>The policy in force.</summary>
    public RateLimitPolicy Policy => Volatile.Read(ref _policy);

    /// <summary>The store.</summary>
    public IRateLimitStore Store => _store;

    /// <summary>
    /// Where subjects' overrides are looked up (<see cref="IOverrideStore.TryFind"/>, local memory only), or
    /// <see langword="null"/> for none. An override's plan comes before the request's, and its rates before the plan's.
    /// </summary>
    public IOverrideStore? Overrides
    {
        get => Volatile.Read(ref _overrides);
        set => Volatile.Write(ref _overrides, value);
    }

    /// <summary>
    /// The bans set at runtime (IP, network or subject), which the front doors look up locally before deciding
    /// (<see cref="Bans.IBanStore.TryFind"/>); <see langword="null"/> for none.
    /// </summary>
    public Bans.IBanStore? Bans
    {
        get => Volatile.Read(ref _bans);
        set => Volatile.Write(ref _bans, value);
    }

    /// <summary>Sees every rejection, enforced or shadow; <see langword="null"/> for none.</summary>
    public IRejectionObserver? RejectionObserver
    {
        get => Volatile.Read(ref _rejectionObserver);
        set => Volatile.Write(ref _rejectionObserver, value);
    }

    /// <summary>Puts <paramref name="policy"/> in force for every request that starts from now on.</summary>
    public void UpdatePolicy(RateLimitPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Volatile.Write(ref _policy, policy);
    }

    /// <summary>Decides <paramref name="request"/> on the tiers from <paramref name="first"/> to <paramref name="last"/>.</summary>
    /// <param name="request">The request.</param>
    /// <param name="first">The first tier to evaluate.</param>
    /// <param name="last">The last tier to evaluate.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>The result; already complete, without allocating, on the in-memory store.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A tier is not one of <see cref="RateLimitTier"/>'s values.</exception>
    public ValueTask<RateLimitResult> EvaluateAsync(
        IRequestContext request,
        RateLimitTier first = RateLimitTier.Edge,
        RateLimitTier last = RateLimitTier.Global,
        CancellationToken cancellationToken = default) =>
        EvaluateAsync(request, first, last, ReadOnlyMemory<RateLimitCheck>.Empty, cancellationToken);

    /// <summary>
    /// Decides <paramref name="preChecks"/>, then, unless one rejects, <paramref name="request"/> on the tiers from
    /// <paramref name="first"/> to <paramref name="last"/>: the pre-checks are a stage before the tiers in the same store
    /// call, so a remote store still decides the request in one round trip.
    /// </summary>
    /// <remarks>
    /// A pre-check is a check of the caller's own, outside the policy, such as the probe of an edge rule's ban
    /// (<see cref="RateLimitCheck.IsProbe"/>). An enforced pre-check that is denied rejects the request before any tier is
    /// decided or charged: the result's <see cref="RateLimitResult.DeniedPreCheck"/> is its index in
    /// <paramref name="preChecks"/>, which the caller maps back to what it made the check for, and
    /// <see cref="RateLimitResult.PreCheckOutcome"/> carries its outcome. Pre-checks are not counted on the
    /// <c>floodgate.decisions</c> counter nor logged: they have no rule, and the caller counts them as it sees fit.
    /// </remarks>
    /// <param name="request">The request.</param>
    /// <param name="first">The first tier to evaluate.</param>
    /// <param name="last">The last tier to evaluate.</param>
    /// <param name="preChecks">The pre-checks, decided as one stage (atomic per identity, as a tier's checks are).</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>The result; already complete, without allocating, on the in-memory store.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A tier is not one of <see cref="RateLimitTier"/>'s values.</exception>
    public ValueTask<RateLimitResult> EvaluateAsync(
        IRequestContext request,
        RateLimitTier first,
        RateLimitTier last,
        ReadOnlyMemory<RateLimitCheck> preChecks,
        CancellationToken cancellationToken = default) =>
        EvaluateAsync(Policy, request, first, last, preChecks, cancellationToken);

    /// <summary>
    /// Decides as <see cref="EvaluateAsync(IRequestContext, RateLimitTier, RateLimitTier, ReadOnlyMemory{RateLimitCheck}, CancellationToken)"/>
    /// does, but on <paramref name="policy"/> rather than the policy in force.
    /// </summary>
    /// <remarks>
    /// For front doors that decide one request in several calls, such as the ASP.NET Core middleware (the edge tier before
    /// the credentials are checked, the other tiers after): read <see cref="Policy"/> once when the request starts and pass
    /// it to every call, so that a reload (<see cref="UpdatePolicy"/>) between the calls cannot split the request across
    /// two policies. The engine keeps no reference to <paramref name="policy"/>.
    /// </remarks>
    /// <param name="policy">The policy to decide on: usually <see cref="Policy"/>, read when the request started.</param>
    /// <param name="request">The request.</param>
    /// <param name="first">The first tier to evaluate.</param>
    /// <param name="last">The last tier to evaluate.</param>
    /// <param name="preChecks">The pre-checks, decided as one stage before the tiers; empty for none.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    /// <returns>The result; already complete, without allocating, on the in-memory store.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A tier is not one of <see cref="RateLimitTier"/>'s values.</exception>
    public ValueTask<RateLimitResult> EvaluateAsync(
        RateLimitPolicy policy,
        IRequestContext request,
        RateLimitTier first,
        RateLimitTier last,
        ReadOnlyMemory<RateLimitCheck> preChecks,
        CancellationToken cancellationToken = default) =>
        Evaluate(policy, request, first, last, preChecks, queueing: false, cancellationToken);

    private ValueTask<RateLimitResult> Evaluate(
        RateLimitPolicy policy,
        IRequestContext request,
        RateLimitTier first,
        RateLimitTier last,
        ReadOnlyMemory<RateLimitCheck> preChecks,
        bool queueing,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(request);
        if (!Enum.IsDefined(first) || !Enum.IsDefined(last))
        {
            throw new ArgumentOutOfRangeException(nameof(first), $"Tiers run from {RateLimitTier.Edge} to {RateLimitTier.Global}; got {first} to {last}.");
        }

        var batch = Build(policy, Overrides, first, last, request, preChecks.Span);
        if (batch is null)
        {
            return new ValueTask<RateLimitResult>(new Evaluation().ToResult(true));
        }

        // One store call for every tier: a remote store decides them in order in one round trip.
        var pending = _store.DecideStagesAsync(
            batch.Checks.AsMemory(0, batch.Count), batch.StageEnds.AsMemory(0, batch.StageCount), batch.Outcomes.AsMemory(0, batch.Count), cancellationToken);
        if (!pending.IsCompletedSuccessfully)
        {
            return EvaluateSlowAsync(batch, pending, request, queueing, cancellationToken);
        }

        var evaluation = new Evaluation { Queueing = queueing };
        return Process(batch, pending.Result, request, ref evaluation) ? new ValueTask<RateLimitResult>(evaluation.ToResult(true)) : Reject(evaluation);
    }

    internal static RateLimitDecision MoreConstrained(in RateLimitDecision a, in RateLimitDecision b)
    {
        if (a.Rule is null)
        {
            return b;
        }

        if (b.Rule is null)
        {
            return a;
        }

        return b.Remaining < a.Remaining || (b.Remaining == a.Remaining && b.ResetAfter > a.ResetAfter) ? b : a;
    }

    private static TimeSpan RetryOrder(TimeSpan retry) => retry == Timeout.InfiniteTimeSpan ? TimeSpan.MaxValue : retry;

    /// <summary>
    /// Folds the outcomes of the <paramref name="decided"/> stages into the evaluation and returns the batch;
    /// <see langword="false"/> when a tier rejects.
    /// </summary>
    private bool Process(TierBatch batch, int decided, IRequestContext request, ref Evaluation evaluation)
    {
        try
        {
            var start = 0;
            for (var stage = 0; stage < batch.StageCount; stage++)
            {
                if (stage == decided)
                {
                    throw new InvalidOperationException(
                        $"The store {_store.GetType().Name} decided {decided} of {batch.StageCount} stages without rejecting in the last one.");
                }

                var end = batch.StageEnds[stage];
                if (stage == 0 && batch.PreCheckCount > 0
                    ? !ProcessPreChecks(batch, end, ref evaluation)
                    : !ProcessTier(batch, start, end, request, ref evaluation))
                {
                    return false;
                }

                start = end;
            }

            return true;
        }
        finally
        {
            TierBatch.Return(batch);
        }
    }

    /// <summary>
    /// Folds the pre-checks' outcomes into the evaluation, neither counted nor logged; <see langword="false"/> when an
    /// enforced pre-check was denied, the first of them then naming the rejection.
    /// </summary>
    private static bool ProcessPreChecks(TierBatch batch, int end, ref Evaluation evaluation)
    {
        for (var i = 0; i < end; i++)
        {
            ref readonly var check = ref batch.Checks[i];
            ref readonly var stored = ref batch.Outcomes[i];
            if (stored.LeaseId != 0)
            {
                (evaluation.Leases ??= new LeaseBag()).Add(check, stored.LeaseId, null);
            }

            if (!stored.Outcome.IsAllowed && !check.IsShadow && evaluation.DeniedPreCheck < 0)
            {
                evaluation.DeniedPreCheck = i;
                evaluation.PreCheckOutcome = stored;
            }
        }

        return evaluation.DeniedPreCheck < 0;
    }

    /// <summary>Folds one tier's outcomes into the evaluation; <see langword="false"/> when the tier rejects.</summary>
    private bool ProcessTier(TierBatch batch, int start, int end, IRequestContext request, ref Evaluation evaluation)
    {
        var rejected = false;
        var rejection = default(RateLimitDecision);

        // What the earlier tiers hold, kept while a request waits in a concurrency queue of this one.
        var before = evaluation.Best;
        var leasesBefore = evaluation.Leases?.Count ?? 0;
        var costsBefore = evaluation.Costs?.Count ?? 0;
        var delayBefore = evaluation.Delay;
        var queued = -1;
        var onlyQueued = true;
        for (var i = start; i < end; i++)
        {
            ref readonly var check = ref batch.Checks[i];
            ref readonly var stored = ref batch.Outcomes[i];
            var decision = new RateLimitDecision(batch.Rules[i], new CheckDecision(check.Limit, stored.Outcome, stored.IsStoreFailure), check.IsShadow);
            Count(decision);
            if (stored.LeaseId != 0)
            {
                (evaluation.Leases ??= new LeaseBag()).Add(check, stored.LeaseId, batch.Rules[i].Name);
            }

            if (stored.Committed && batch.Rules[i].Thresholds is { } thresholds)
            {
                CheckThresholds(batch.Rules[i], thresholds, check, stored, request);
            }

            if (stored.Committed && batch.Rules[i].Costs is not null && check.Limit.Algorithm != LimitAlgorithm.Concurrency)
            {
                (evaluation.Costs ??= new CostBag()).Add(check, batch.Rules[i]);
                CountReserved(batch.Rules[i], check.Cost);
            }

            if (decision.IsAllowed)
            {
                if (!check.IsShadow)
                {
                    evaluation.Best = MoreConstrained(evaluation.Best, decision);
                    evaluation.Delay = decision.Delay > evaluation.Delay ? decision.Delay : evaluation.Delay;
                }
            }
            else if (check.IsShadow)
            {
                if (evaluation.Shadow.Rule is null)
                {
                    evaluation.Shadow = decision;
                }

                LogRejection(decision, request);
            }
            else
            {
                // Waiting helps only when every denial of the tier is a queued concurrency rule's, not a failure's.
                if (check.Limit.QueueSize > 0 && !decision.IsStoreFailure && !decision.IsPermanent)
                {
                    queued = queued < 0 ? i : queued;
                }
                else
                {
                    onlyQueued = false;
                }

                if (!rejected || RetryOrder(decision.RetryAfter) > RetryOrder(rejection.RetryAfter))
                {
                    rejected = true;
                    rejection = decision;
                }
            }
        }

        if (rejected)
        {
            evaluation.Best = rejection;
            if (evaluation.Queueing && onlyQueued && queued >= 0)
            {
                evaluation.Wait = new QueuedRejection(batch.Checks[queued], batch.Rules[queued].Tier, before, leasesBefore, costsBefore, delayBefore);
            }
            else
            {
                LogRejection(rejection, request);
            }
        }

        return !rejected;
    }

    private async ValueTask<RateLimitResult> EvaluateSlowAsync(TierBatch batch, ValueTask<int> pending, IRequestContext request, bool queueing, CancellationToken cancellationToken)
    {
        int decided;
        try
        {
            decided = await pending.ConfigureAwait(false);
        }
        catch
        {
            TierBatch.Return(batch);
            throw;
        }

        var evaluation = new Evaluation { Queueing = queueing };
        if (Process(batch, decided, request, ref evaluation))
        {
            return evaluation.ToResult(true);
        }

        return await Reject(evaluation).ConfigureAwait(false);
    }

    private ValueTask<RateLimitResult> Reject(Evaluation evaluation)
    {
        if (evaluation.Wait is { } wait)
        {
            // The earlier tiers' leases and reservations stay with the request while it waits; only the rejecting
            // tier's are given back.
            (wait.Leases, evaluation.Leases) = LeaseBag.Split(evaluation.Leases, wait.LeasesBefore);
            (wait.Costs, evaluation.Costs) = CostBag.Split(evaluation.Costs, wait.CostsBefore);
            wait.Shadow = evaluation.Shadow;
        }

        // Not the request's token: a client that goes away must not leave a rejected request's leases held.
        var release = Release(evaluation.Leases, CancellationToken.None);
        var refund = Refund(evaluation.Costs);
        var result = evaluation.ToResult(false);
        if (release.IsCompletedSuccessfully && refund.IsCompletedSuccessfully)
        {
            return new ValueTask<RateLimitResult>(result);
        }

        return AwaitRelease(release, refund, result);

        static async ValueTask<RateLimitResult> AwaitRelease(ValueTask release, ValueTask refund, RateLimitResult result)
        {
            await release.ConfigureAwait(false);
            await refund.ConfigureAwait(false);
            return result;
        }
    }

    private struct Evaluation()
    {
        public RateLimitDecision Best;
        public RateLimitDecision Shadow;
        public LeaseBag? Leases;
        public CostBag? Costs;
        public int DeniedPreCheck = -1;
        public StoreOutcome PreCheckOutcome;
        public TimeSpan Delay;
        public bool Queueing;
        public QueuedRejection? Wait;

        public readonly RateLimitResult ToResult(bool allowed) => new(allowed, Best, Shadow, allowed ? Leases : null, DeniedPreCheck, PreCheckOutcome, allowed ? Costs : null, allowed ? Delay : TimeSpan.Zero) { Wait = allowed ? null : Wait };
    }
}
