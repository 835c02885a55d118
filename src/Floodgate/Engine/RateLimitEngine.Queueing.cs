using System.Diagnostics;
using Floodgate.Queueing;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

// Concurrency queues: a request a queued concurrency rule rejects waits for a permit of its key, then tries again.
public sealed partial class RateLimitEngine
{
    /// <summary>
    /// Decides as <see cref="EvaluateAsync(RateLimitPolicy, IRequestContext, RateLimitTier, RateLimitTier, ReadOnlyMemory{RateLimitCheck}, CancellationToken)"/>
    /// does, but a request that a tier rejects only by concurrency rules that queue (<see cref="Limits.Limit.WithQueue"/>)
    /// waits for a permit, then is decided again from that tier: admitted, or rejected when the queue is full or its
    /// timeout passes.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The wait holds no thread and never polls in a loop: the request's place in the key's queue (bounded by the rule's
    /// queue size, woken in its order) is a task completed when a lease of the key is released, by this engine, another
    /// engine on the same store, or another process sharing it (<see cref="IPermitReleaseNotifier"/>), and a timer of the
    /// engine's <see cref="TimeProvider"/> ends it at the deadline. While anyone waits, each queue also wakes one waiter
    /// every 200 ms when none is trying already, the safety net for a notice that never came. Woken, a request tries
    /// again; if another request took the permit first it goes back to its place, its deadline unchanged.
    /// </para>
    /// <para>
    /// While it waits the request keeps what earlier tiers of the same call granted it (their leases, unrenewed, and their
    /// reservations); what the rejecting tier granted is given back at once. When <paramref name="cancellationToken"/> is
    /// cancelled (the client went away), the request leaves the queue, everything it holds is released and refunded, and
    /// <see cref="OperationCanceledException"/> is thrown. A request that is not rejected by a queue costs nothing more
    /// than <see cref="EvaluateAsync(RateLimitPolicy, IRequestContext, RateLimitTier, RateLimitTier, ReadOnlyMemory{RateLimitCheck}, CancellationToken)"/>.
    /// Each try is counted on <c>floodgate.decisions</c>; a request rejected in the end is logged once.
    /// </para>
    /// </remarks>
    /// <param name="policy">The policy to decide on, read when the request started.</param>
    /// <param name="request">The request.</param>
    /// <param name="first">The first tier to evaluate.</param>
    /// <param name="last">The last tier to evaluate.</param>
    /// <param name="preChecks">The pre-checks, decided as one stage before the tiers; empty for none.</param>
    /// <param name="cancellationToken">Cancels waiting for the store and in a queue.</param>
    /// <returns>The result; already complete, without allocating, on the in-memory store when no queue is involved.</returns>
    /// <exception cref="OperationCanceledException">The request was cancelled while it waited.</exception>
    public ValueTask<RateLimitResult> EvaluateQueuedAsync(
        RateLimitPolicy policy,
        IRequestContext request,
        RateLimitTier first,
        RateLimitTier last,
        ReadOnlyMemory<RateLimitCheck> preChecks,
        CancellationToken cancellationToken = default)
    {
        var pending = Evaluate(policy, request, first, last, preChecks, queueing: true, cancellationToken);
        if (!pending.IsCompletedSuccessfully)
        {
            return WaitForPermitAsync(pending, policy, request, last, cancellationToken);
        }

        // Read once: a ValueTask is consumed by reading its result.
        var result = pending.Result;
        return result.Wait is null
            ? new ValueTask<RateLimitResult>(result)
            : WaitForPermitAsync(new ValueTask<RateLimitResult>(result), policy, request, last, cancellationToken);
    }

    /// <summary>The permit queues of this engine's store, in this process.</summary>
    internal PermitQueues Queues => _queues;

    private async ValueTask<RateLimitResult> WaitForPermitAsync(ValueTask<RateLimitResult> pending, RateLimitPolicy policy, IRequestContext request, RateLimitTier last, CancellationToken cancellationToken)
    {
        var result = await pending.ConfigureAwait(false);
        if (result.Wait is not { } wait)
        {
            return result;
        }

        var held = wait.Held;
        var started = _time.GetTimestamp();
        var waitedSince = started;
        var rule = result.Decision.Rule?.Name;
        var outcome = "full";
        var timeout = wait.Check.Limit.QueueTimeout;
        PermitTicket? ticket = null;
        var ok = false;
        try
        {
            while (true)
            {
                var left = timeout - _time.GetElapsedTime(started);
                ticket ??= left > TimeSpan.Zero ? _queues.TryEnter(wait.Check.Key, wait.Check.Limit, left, cancellationToken) : null;
                if (ticket is null)
                {
                    // The queue is full, or the time is up: rejected as without a queue.
                    outcome = left > TimeSpan.Zero ? "full" : "timed_out";
                    return Final(result, request);
                }

                // Until the turn says otherwise: a wait ended by an exception is a request gone (or its store failing).
                outcome = "canceled";
                var turn = await ticket.Turn.ConfigureAwait(false);
                if (turn == PermitWait.Canceled)
                {
                    outcome = "canceled";
                    cancellationToken.ThrowIfCancellationRequested();
                }

                if (turn == PermitWait.TimedOut)
                {
                    outcome = "timed_out";
                    return Final(result, request);
                }

                var retry = await Evaluate(policy, request, wait.Tier, last, ReadOnlyMemory<RateLimitCheck>.Empty, queueing: true, cancellationToken).ConfigureAwait(false);
                if (retry.IsAllowed)
                {
                    ok = true;
                    outcome = "admitted";
                    return RateLimitResult.Combine(held, retry);
                }

                result = retry;
                if (retry.Wait is not { } again)
                {
                    outcome = "rejected";
                    return Final(result, request);
                }

                // Rejected again by a queue: the same key's (another request took the permit), or a later one's.
                held = RateLimitResult.Combine(held, again.Held);
                if (again.Check.Key == wait.Check.Key)
                {
                    ticket.Requeue();
                }
                else
                {
                    ticket.Dispose();
                    ticket = null;
                    timeout = again.Check.Limit.QueueTimeout;
                    started = _time.GetTimestamp();
                }

                wait = again;
            }
        }
        finally
        {
            ticket?.Dispose();
            var tags = new TagList { { "rule", rule }, { "result", outcome } };
            _queueWaits.Add(1, tags);
            _queueWaitDuration.Record(_time.GetElapsedTime(waitedSince).TotalSeconds, tags);
            if (!ok)
            {
                // Rejected or gone: what the earlier tiers granted is given back, whatever the token says.
                await Release(held.Leases, CancellationToken.None).ConfigureAwait(false);
                await Refund(held.Costs).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The rejection that ends a wait, logged now that it is final, without its queue.</summary>
    private RateLimitResult Final(in RateLimitResult rejected, IRequestContext request)
    {
        LogRejection(rejected.Decision, request);
        return rejected with { Wait = null };
    }
}
