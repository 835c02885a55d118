using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Script calls: encoding and sending them, waiting for them, and reading their answers into the round.
public sealed partial class RedisStore
{
    /// <summary>
    /// Encodes <paramref name="call"/> (decide.lua's arguments, by <see cref="DecideProtocol"/>) and sends it; a calendar
    /// quota's periods are computed around <paramref name="calendarNow"/> when given (the server's, after a skew).
    /// </summary>
    private void Send(Call call, ReadOnlySpan<RateLimitCheck> checks, Batch batch, long? calendarNow)
    {
        var sources = batch.Sources;
        var remote = 0;
        foreach (var group in call.Groups)
        {
            remote += group.RemoteCount;
        }

        var keys = new RedisKey[remote];
        var values = new RedisValue[DecideProtocol.ArgumentCount(call.Groups.Count, remote)];
        var at = DecideProtocol.WriteHeader(values, batch.ServerNow, call.Groups.Count);
        var n = 0;
        foreach (var group in call.Groups)
        {
            at = DecideProtocol.WriteGroup(values, at, group.Stage, group.RemoteCount);
            group.Remote = new int[group.RemoteCount];
            group.LeaseIds = null;
            var g = 0;
            foreach (var k in group.Members)
            {
                if (sources[k] is not (Source.Remote or Source.Acquire))
                {
                    continue;
                }

                ref readonly var check = ref checks[k];
                var limit = check.Limit;
                group.Remote[g] = k;
                keys[n] = RedisKeys.For(_prefix, check.Key, limit.Algorithm);
                var leaseId = 0L;
                if (limit.Algorithm == LimitAlgorithm.Concurrency)
                {
                    leaseId = NewRedisLeaseId();
                    (group.LeaseIds ??= new long[group.RemoteCount])[g] = leaseId;
                }

                var slice = sources[k] == Source.Acquire ? limit.LeasedSlice : 0;
                at = DecideProtocol.WriteCheck(values, at, check, slice, leaseId, calendarNow ?? batch.LocalNow);
                n++;
                g++;
            }
        }

        _metrics.CountRoundTrip();
        call.Keys = keys;
        call.Values = values;
        call.SentAt = TimeProvider.System.GetTimestamp();
        // On a single node, concurrent decisions' calls share runs; a test's own clock (a given now) goes alone.
        call.Task = call.Slot == NoSlot && batch.ServerNow is null && !call.SendScript
            ? _calls.Evaluate(keys, values, batch.Deadline, batch.Cancellation)
            : Evaluate(keys, values, call.SendScript);
    }

    /// <summary>Waits for a round's calls (resending after NOSCRIPT or a calendar skew) and applies their answers.</summary>
    private async ValueTask Complete(Batch batch, Round round, CancellationToken cancellationToken)
    {
        var calls = round.Calls!;
        try
        {
            await AwaitCalls(calls, batch, cancellationToken).ConfigureAwait(false);

            if (Unanswered(calls, out var onlyTryAgain) is { } again)
            {
                await ResendAsync(calls, again, onlyTryAgain, batch, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller gave up: give back what the round took locally, and in Redis the leases the scripts may take.
            // The decision throws, so the caller never sees the leases earlier rounds granted either: release them too.
            foreach (var group in round.Groups)
            {
                Abandon(group, batch.Checks.Span, batch.Sources);
            }

            foreach (var call in calls)
            {
                ReleaseAbandoned(call, batch.Checks.Span);
            }

            ReleaseSettled(batch);
            throw;
        }

        Exception? failure = null;
        var timedOut = false;
        var failed = false;
        CircuitBreaker? opened = null;

        // Given up on because this process was late (counted as such now), or not known yet (judged later).
        var late = false;
        LateVerdict? later = null;
        var now = SteadyNow();
        var stamp = TimeProvider.System.GetTimestamp();
        foreach (var call in calls)
        {
            var task = call.Task!;

            // Read once: a task completing between two reads of its state would be taken for a failure.
            var status = task.Status;
            if (call.Late || CallCoalescer.WasNeverSent(task))
            {
                // Answered (NOSCRIPT, or the server's calendar) but not sent again for want of time, or never sent (its
                // decision's time ran out while it waited for a run): answered by the failure mode, and not held against
                // the node. A call never sent, seen by a process that is behind, waited on an answer read late: this
                // process's lateness, not a timeout.
                MarkFailed(call);
                if (!call.Late && !KeepingUp(stamp - batch.Deadline))
                {
                    late = true;
                    continue;
                }

                timedOut = failed = true;
                failure ??= NoTimeLeft();
                continue;
            }

            if (status == TaskStatus.RanToCompletion)
            {
                if (Apply(call, task.Result, batch))
                {
                    if (call.Breaker!.OnSuccess())
                    {
                        LogBreakerClosed(_logger, call.Breaker.Node);
                    }

                    continue;
                }

                failure ??= new RedisException("The decision script answered in an unexpected shape.");
            }
            else if (status is not (TaskStatus.Faulted or TaskStatus.Canceled))
            {
                // Unanswered when the wait ended: Redis's failure, this process's lateness, or judged later.
                MarkFailed(call);
                Observe(task);
                ReleaseAbandoned(call, batch.Checks.Span);
                var blame = JudgeUnanswered(call, batch, stamp, out var run);
                if (blame == Blame.ThisProcess)
                {
                    late = true;
                    continue;
                }

                if (blame is Blame.Later or Blame.WithItsRun)
                {
                    later ??= new LateVerdict(this, batch.LateBy);
                    if (blame == Blame.Later)
                    {
                        JudgeLater(task, SentAt(call), call.Breaker, later);
                    }
                    else
                    {
                        JudgeLater(run.Answer!, run.SentAt, call.Breaker, later);
                    }

                    continue;
                }

                timedOut = true;
                failure ??= new TimeoutException($"Redis did not answer within {_options.Timeout}.");
            }
            else
            {
                failure ??= task.Exception?.InnerException ?? new TaskCanceledException(task);
            }

            failed = true;
            opened = call.Breaker!.OnFailure(now) ? call.Breaker : opened;
            MarkFailed(call);
        }

        if (failed)
        {
            // Counted and logged once for the round; each failed call counted against its own node's breaker.
            Report(timedOut ? "timeout" : "error", failure, opened);
        }
        else if (late && later is null)
        {
            Report(Late, null, null, Math.Max(batch.LateBy, stamp - batch.Deadline));
        }

        // Counted when its calls are judged, unless the round already was.
        later?.Close(counted: failed);
    }

    /// <summary>Marks every group of <paramref name="call"/> failed: answered by the failure mode.</summary>
    private static void MarkFailed(Call call)
    {
        foreach (var group in call.Groups)
        {
            group.Failed = true;
        }
    }

    /// <summary>
    /// Waits for the calls until the batch's deadline; a failure or a timeout is read from each call's task. A wait that
    /// times out ends the batch's time (<see cref="Batch.Expire"/>), whatever the timer's granularity left on the clock.
    /// </summary>
    private static async Task AwaitCalls(List<Call> calls, Batch batch, CancellationToken cancellationToken)
    {
        var all = calls.Count == 1 ? calls[0].Task! : Task.WhenAll(calls.Select(static c => (Task)c.Task!));
        try
        {
            await all.WaitAsync(Remaining(batch.Deadline), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!all.IsCompleted)
        {
            // The wait's own timeout, not a call's (StackExchange.Redis's RedisTimeoutException is one too).
            batch.Expire();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Each call is answered by its own task's state.
        }
        finally
        {
            if (!all.IsCompleted)
            {
                Observe(all);
            }
        }
    }

    private static void Observe(Task task) =>
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>Sends the script by its hash, or (<paramref name="sendScript"/>, after NOSCRIPT) as text, which the library caches.</summary>
    private Task<RedisResult> Evaluate(RedisKey[] keys, RedisValue[] values, bool sendScript)
    {
        try
        {
            var database = (Current ?? throw NoMaster()).GetDatabase();
            return sendScript
                ? database.ScriptEvaluateAsync(Script, keys, values, CommandFlags.DemandMaster)
                : database.ScriptEvaluateAsync(ScriptHash, keys, values, CommandFlags.DemandMaster);
        }
        catch (Exception ex)
        {
            // RedisCommandException (a disabled command, a cross-slot batch, a primary-only command to a replica) and
            // every other synchronous failure becomes a failed call, answered by the failure mode.
            return Task.FromException<RedisResult>(ex);
        }
    }
}
