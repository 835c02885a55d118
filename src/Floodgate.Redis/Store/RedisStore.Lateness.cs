using StackExchange.Redis;

namespace Floodgate.Redis;

// Who a call given up on is held against: Redis, which did not answer, or this process, which was late to send the call
// or to see its answer (its thread pool or its CPU starved). Only Redis's failures count towards the breakers.
public sealed partial class RedisStore
{
    /// <summary>The least lateness that makes a look at a call late, whatever the timeout: about a coarse timer's tick.</summary>
    private static readonly long LateFloorTicks = TimeProvider.System.TimestampFrequency * 16 / 1000;

    /// <summary>
    /// How much less than the whole timeout Redis may have had a call and still be blamed at once: what a decision spends
    /// before it sends without waiting (encoding, a lock), and a timer firing a little early. More was spent waiting.
    /// </summary>
    private static readonly long SendSlackTicks = TimeProvider.System.TimestampFrequency * 2 / 1000;

    /// <summary>Calls being judged later (<see cref="JudgeLaterAsync"/>); for tests, which wait for every verdict.</summary>
    private long _pendingVerdicts;

    /// <summary>How many calls are still being judged after their decision gave up on them while this process was late.</summary>
    internal long PendingVerdicts => Volatile.Read(ref _pendingVerdicts);

    /// <summary>How many decisions were given up on because this process was late, not Redis (<c>failures{reason=late}</c>).</summary>
    internal long LateFailures => _metrics.Late;

    /// <summary>Who is to answer for a call still unanswered when its decision's wait ended.</summary>
    private enum Blame : byte
    {
        /// <summary>Redis: a look made on time found it unanswered after the whole timeout. Held against its node now.</summary>
        Redis,

        /// <summary>This process: it never wrote the call, which waited here for the run ahead of it. Held against nothing.</summary>
        ThisProcess,

        /// <summary>Not known yet: the look came late, or Redis has not had the whole timeout. Judged by <see cref="JudgeLaterAsync"/>.</summary>
        Later,
    }

    /// <summary>
    /// Judges a call unanswered when its decision's wait ended at <paramref name="now"/> (a <see cref="TimeProvider.System"/>
    /// timestamp). Redis is blamed at once only when this process saw the timeout on time (within <see cref="_lateTicks"/>
    /// of the deadline) and Redis had had the call for the whole timeout; a call still waiting for a run is abandoned, never
    /// to be sent.
    /// </summary>
    /// <remarks>
    /// A timeout seen late means the process was starved: the timer's callback waited for a thread like everything else,
    /// so an answer Redis gave in time may be sitting unread, or the call unwritten. Redis's own share starts when the
    /// call went out, not when the decision began: time spent queued here is not Redis's.
    /// </remarks>
    private Blame JudgeUnanswered(Call call, Batch batch, long now)
    {
        var task = call.Task!;
        var onTime = batch.LateBy <= _lateTicks;
        if (CallCoalescer.TryAbandon(task))
        {
            // It waited for the run in flight: Redis's failure if that run, seen on time, went unanswered for the whole
            // timeout (each call waiting on a hung run is counted, as before); otherwise the wait was this process's.
            var since = _calls.InFlightSince();
            return onTime && since != 0 && now - since >= _timeoutTicks - SendSlackTicks ? Blame.Redis : Blame.ThisProcess;
        }

        return onTime && now - SentAt(call) >= _timeoutTicks - SendSlackTicks ? Blame.Redis : Blame.Later;
    }

    /// <summary>When <paramref name="call"/> went out: with its run, for one that waited for a run; else when it was handed to the client.</summary>
    private static long SentAt(Call call) => CallCoalescer.SentAt(call.Task!) is var queuedAt && queuedAt != 0 ? queuedAt : call.SentAt;

    /// <summary>
    /// Judges a call its decision gave up on without blaming Redis yet (<see cref="Blame.Later"/>). Answered meanwhile (a
    /// result, or a server's NOSCRIPT or TRYAGAIN), Redis was alive and the lateness was this process's: a success for
    /// the breaker, which a starved probe thus closes instead of opening it again. Failed (a lost connection, the client's
    /// own timeout), or found unanswered by a look made on time once Redis has had the whole timeout, it counts against
    /// the breaker as it would have at once. While every look comes late the next waits twice as long; the client's own
    /// timeout ends the call at the latest.
    /// </summary>
    private async Task JudgeLaterAsync(Task task, long sentAt, CircuitBreaker? breaker, LateVerdict verdict)
    {
        try
        {
            var now = TimeProvider.System.GetTimestamp();

            // Not before Redis has had its whole timeout, nor sooner than the margin: what this process owes (reading the
            // answer, running its continuation) gets that long to be done.
            var wait = Math.Max(sentAt + _timeoutTicks - now, _lateTicks);
            while (true)
            {
                var due = now + wait;
                await task.WaitAsync(Span(wait), TimeProvider.System).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                now = TimeProvider.System.GetTimestamp();
                if (task.IsCompleted)
                {
                    break;
                }

                if (now - due <= _lateTicks)
                {
                    var opened = breaker is not null && breaker.OnFailure(SteadyNow()) ? breaker : null;
                    verdict.Blame("timeout", new TimeoutException($"Redis did not answer within {Span(now - sentAt)} (judged after the decision, which this process was late for)."), opened);
                    return;
                }

                wait *= 2;
            }

            var error = task.Exception?.InnerException;
            if (error is null || (error is RedisServerException && (error.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal) || error.Message.StartsWith("TRYAGAIN", StringComparison.Ordinal))))
            {
                // Answered (or cancelled, which says nothing of Redis).
                if (!task.IsCanceled && breaker is not null && breaker.OnSuccess())
                {
                    LogBreakerClosed(_logger, breaker.Node);
                }

                return;
            }

            var failed = breaker is not null && breaker.OnFailure(SteadyNow()) ? breaker : null;
            verdict.Blame(error is TimeoutException ? "timeout" : "error", error, failed);
        }
        finally
        {
            Interlocked.Decrement(ref _pendingVerdicts);
            verdict.Release();
        }
    }

    /// <summary>Starts judging <paramref name="task"/> later, one more call of <paramref name="verdict"/>.</summary>
    private void JudgeLater(Task task, long sentAt, CircuitBreaker? breaker, LateVerdict verdict)
    {
        Interlocked.Increment(ref _pendingVerdicts);
        verdict.Hold();
        _ = JudgeLaterAsync(task, sentAt, breaker, verdict);
    }

    private static TimeSpan Span(long ticks) => TimeSpan.FromTicks((long)(ticks * ((double)TimeSpan.TicksPerSecond / TimeProvider.System.TimestampFrequency)));

    /// <summary>
    /// The verdict on the calls of one round (or one release) judged later: counted and logged once, when the last is
    /// judged: <c>late</c> when Redis answered every one, else as Redis failed. A round already counted (another of its
    /// calls was Redis's at once) is not counted again; a breaker opened meanwhile is still logged.
    /// </summary>
    private sealed class LateVerdict(RedisStore store, long lateBy)
    {
        private readonly Lock _lock = new();

        // One hold for the round being set up, released by Close, so that calls judged at once do not report early.
        private int _holds = 1;
        private bool _counted;
        private string? _reason;
        private Exception? _failure;
        private CircuitBreaker? _opened;

        public void Hold() => Interlocked.Increment(ref _holds);

        public void Blame(string reason, Exception failure, CircuitBreaker? opened)
        {
            lock (_lock)
            {
                // An error says more than a timeout: the first of each kind is kept.
                if (_reason is null || (reason == "error" && _reason != "error"))
                {
                    _reason = reason;
                    _failure = failure;
                }

                _opened ??= opened;
            }
        }

        /// <summary>The round is set up: no more calls join the verdict; <paramref name="counted"/> when the round was counted already.</summary>
        public void Close(bool counted)
        {
            _counted = counted;
            Release();
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref _holds) != 0)
            {
                return;
            }

            if (_reason is null)
            {
                if (!_counted)
                {
                    store.Report(Late, null, null, lateBy);
                }
            }
            else if (!_counted || _opened is not null)
            {
                store.Report(_reason, _failure, _opened, lateBy, count: !_counted);
            }
        }
    }
}
