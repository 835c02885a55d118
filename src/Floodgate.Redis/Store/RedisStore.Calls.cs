using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Script calls: encoding and sending them, waiting for them, and reading their answers into the round.
public sealed partial class RedisStore
{
    private void Send(Call call, ReadOnlySpan<RateLimitCheck> checks, Batch batch, long? calendarNow)
    {
        var plan = batch.Plan;
        var remote = 0;
        foreach (var group in call.Groups)
        {
            remote += group.RemoteCount;
        }

        var keys = new RedisKey[remote];
        var values = new RedisValue[2 + (2 * call.Groups.Count) + (remote * Stride)];
        values[0] = batch.ServerNow is { } now ? now : RedisValue.EmptyString;
        values[1] = call.Groups.Count;
        var n = 0;
        var at = 2;
        foreach (var group in call.Groups)
        {
            values[at++] = group.Stage;
            values[at++] = group.RemoteCount;
            group.Remote = new int[group.RemoteCount];
            group.LeaseIds = null;
            var g = 0;
            foreach (var k in group.Members)
            {
                if (plan[k] is not (Kind.Remote or Kind.Acquire))
                {
                    continue;
                }

                ref readonly var check = ref checks[k];
                var limit = check.Limit;
                group.Remote[g] = k;
                keys[n] = RedisKeys.For(_prefix, check.Key, limit.Algorithm);
                values[at + 1] = check.Cost;
                values[at + 2] = (check.IsShadow ? 1 : 0) + (check.IsProbe ? 2 : 0);
                long p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
                switch (limit.Algorithm)
                {
                    case LimitAlgorithm.Gcra:
                        values[at] = 0;
                        (p1, p2, p3) = (limit.IntervalMicroseconds, limit.ToleranceMicroseconds, limit.Burst);
                        break;
                    case LimitAlgorithm.SlidingWindow:
                        values[at] = 1;
                        (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                        break;
                    case LimitAlgorithm.FixedWindow:
                        values[at] = 2;
                        (p1, p2) = (limit.PeriodMicroseconds, limit.Amount);
                        break;
                    case LimitAlgorithm.Quota:
                        values[at] = 3;
                        (p1, p2) = (limit.Amount, limit.PeriodMicroseconds);
                        if (limit.Calendar is not null)
                        {
                            p3 = 1;
                            (p4, p5) = limit.CalendarPeriod(calendarNow ?? batch.LocalNow);
                            p6 = limit.CalendarPeriod(p5).End;
                        }

                        break;
                    default:
                        values[at] = 4;
                        var leaseId = RedisLeaseBit | (Random.Shared.NextInt64() & (RedisLeaseBit - 1));
                        (group.LeaseIds ??= new long[group.RemoteCount])[g] = leaseId;
                        values[at + 3] = limit.Amount;
                        values[at + 4] = limit.LeaseTimeoutMicroseconds;
                        values[at + 5] = LeaseMember(leaseId, check.Cost);
                        for (var f = 6; f < Stride; f++)
                        {
                            values[at + f] = 0;
                        }

                        n++;
                        g++;
                        at += Stride;
                        continue;
                }

                if (plan[k] == Kind.Acquire)
                {
                    p7 = limit.LeasedSlice;
                }

                values[at + 3] = p1;
                values[at + 4] = p2;
                values[at + 5] = p3;
                values[at + 6] = p4;
                values[at + 7] = p5;
                values[at + 8] = p6;
                values[at + 9] = p7;
                n++;
                g++;
                at += Stride;
            }
        }

        _metrics.CountRoundTrip();
        call.Keys = keys;
        call.Values = values;
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
                Abandon(group, batch.Checks.Span, batch.Plan);
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
        var now = SteadyNow();
        foreach (var call in calls)
        {
            var task = call.Task!;

            // Read once: a task completing between two reads of its state would be taken for a failure.
            var status = task.Status;
            if (call.Late || CallCoalescer.WasNeverSent(task))
            {
                // Answered (NOSCRIPT, or the server's calendar) but not sent again for want of time, or never sent (its
                // decision's time ran out while it waited for a run): answered by the failure mode as timed out, and
                // not held against the node.
                timedOut = failed = true;
                failure ??= NoTimeLeft();
                foreach (var group in call.Groups)
                {
                    group.Failed = true;
                }

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
                Observe(task);
                ReleaseAbandoned(call, batch.Checks.Span);
                timedOut = true;
                failure ??= new TimeoutException($"Redis did not answer within {_options.Timeout}.");
            }
            else
            {
                failure ??= task.Exception?.InnerException ?? new TaskCanceledException(task);
            }

            failed = true;
            opened = call.Breaker!.OnFailure(now) ? call.Breaker : opened;
            foreach (var group in call.Groups)
            {
                group.Failed = true;
            }
        }

        if (failed)
        {
            // Counted and logged once for the round; each failed call counted against its own node's breaker.
            Report(timedOut ? "timeout" : "error", failure, opened);
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
