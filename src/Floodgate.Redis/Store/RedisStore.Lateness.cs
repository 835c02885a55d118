using StackExchange.Redis;

namespace Floodgate.Redis;

// Who a call given up on is held against: Redis, which did not answer, or this process, which was late to send the call
// or to see its answer (its thread pool or its CPU starved). Only Redis's failures count towards the breakers.
public sealed partial class RedisStore
{
    /// <summary>The least lateness that makes a look at a call late, whatever the timeout: about a coarse timer's tick.</summary>
    private static readonly long LateFloorTicks = TimeProvider.System.TimestampFrequency * 16 / 1000;

    /// <summary>How long a call may wait in the coalescer's queue and still have had the whole timeout with Redis.</summary>
    private static readonly long QueueSlackTicks = TimeProvider.System.TimestampFrequency * 2 / 1000;

    /// <summary>
    /// The most work items that may wait for the thread pool when this process is taken to be keeping up: as many as it
    /// has processors. More, and an answer Redis gave may be among them, unread.
    /// </summary>
    private static readonly int PendingLimit = Environment.ProcessorCount;

    /// <summary>Calls being judged later (<see cref="JudgeLaterAsync"/>); for tests, which wait for every verdict.</summary>
    private long _pendingVerdicts;

    /// <summary>How many calls are still being judged after their decision gave up on them while this process was late.</summary>
    internal long PendingVerdicts => Volatile.Read(ref _pendingVerdicts);

    /// <summary>How many decisions were given up on because this process was late, not Redis (<c>failures{reason=late}</c>).</summary>
    internal long LateFailures => _metrics.Late;

    /// <summary>Who is to answer for a call still unanswered when its decision's wait ended.</summary>
    private enum Blame : byte
    {
        /// <summary>Redis: this process was keeping up, and Redis had had the call for the whole timeout. Held against its node now.</summary>
        Redis,

        /// <summary>This process: it never wrote the call, which waited here for a run already answered. Held against nothing.</summary>
        ThisProcess,

        /// <summary>Not known yet: this process was behind, or Redis has not had the whole timeout. Judged by <see cref="JudgeLaterAsync"/>.</summary>
        Later,

        /// <summary>
        /// Never written, and not known yet: the call waited for a run still unanswered, which this process was behind to
        /// judge. Judged by that run's answer (<see cref="JudgeLaterAsync"/> on the run), as a call waiting on a hung run
        /// counts with it.
        /// </summary>
        WithItsRun,
    }

    /// <summary>
    /// Whether this process is keeping up: it saw a deadline at most <see cref="_onTimeTicks"/> after it passed
    /// (<paramref name="lateBy"/>), and no more than <see cref="PendingLimit"/> work items wait for the thread pool.
    /// </summary>
    /// <remarks>
    /// Both are needed: the runtime runs timer callbacks ahead of other work items, so a timeout is seen on time while a
    /// socket's completion (an answer Redis gave in time) still waits in the queue; and a starved CPU delays everything,
    /// the timer included.
    /// </remarks>
    private bool KeepingUp(long lateBy) => lateBy <= _onTimeTicks && ThreadPool.PendingWorkItemCount <= PendingLimit;

    /// <summary>
    /// Judges a call unanswered when its decision's wait ended at <paramref name="now"/> (a <see cref="TimeProvider.System"/>
    /// timestamp). Redis is blamed at once only when this process is keeping up (<see cref="KeepingUp"/>) and Redis has
    /// had the call for the whole timeout: it went out as the decision began, not after waiting in the coalescer's queue,
    /// for a leased slice or for an earlier round. A call still waiting for a run is abandoned, never to be sent.
    /// </summary>
    private Blame JudgeUnanswered(Call call, Batch batch, long now, out (long SentAt, Task<RedisResult>? Answer) run)
    {
        var task = call.Task!;
        var keepingUp = KeepingUp(batch.LateBy);
        run = default;
        if (CallCoalescer.TryAbandon(task))
        {
            // It waited for the run in flight: Redis's failure if that run went unanswered for (about) the whole timeout
            // while this process kept up (each call waiting on a hung run is counted, as before); judged with the run if
            // this process is behind; this process's if the run was answered.
            run = _calls.InFlight();
            if (run.Answer is not { IsCompleted: false })
            {
                return Blame.ThisProcess;
            }

            return keepingUp && now - run.SentAt >= _timeoutTicks - _lateTicks ? Blame.Redis : Blame.WithItsRun;
        }

        var queuedAt = CallCoalescer.SentAt(task);
        var waited = call.SentAt - (batch.GivenDeadline - _timeoutTicks);
        var hadItAll = (queuedAt == 0 || queuedAt - call.SentAt <= QueueSlackTicks) && waited <= _lateTicks;
        return keepingUp && hadItAll ? Blame.Redis : Blame.Later;
    }

    /// <summary>
    /// Completes once a work item queued now on the thread pool's global queue has run: behind every work item already
    /// waiting there, as an answer read from the socket may be. (<see cref="Task.Yield"/> from a pool thread would queue on
    /// that thread's own queue, which runs first, and measure nothing of the backlog.)
    /// </summary>
    private static Task BehindQueuedWorkAsync()
    {
        var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ThreadPool.UnsafeQueueUserWorkItem(static ran => ran.TrySetResult(), ran, preferLocal: false);
        return ran.Task;
    }

    /// <summary>When <paramref name="call"/> went out: with its run, for one that waited for a run; else when it was handed to the client.</summary>
    private static long SentAt(Call call) => CallCoalescer.SentAt(call.Task!) is var queuedAt && queuedAt != 0 ? queuedAt : call.SentAt;

    /// <summary>
    /// Judges a call its decision gave up on without blaming Redis yet (<see cref="Blame.Later"/>). Answered meanwhile (a
    /// result, or a server's NOSCRIPT or TRYAGAIN), Redis was alive and the lateness was this process's: a success for
    /// the breaker, which a starved probe thus closes instead of opening it again. Failed (a lost connection, the client's
    /// own timeout), or still unanswered once Redis has had the whole timeout, when a look comes on time and a work item
    /// queued behind whatever waited for the pool runs within the margin too, it counts against the breaker as it would
    /// have at once. While this process is behind the next look waits twice as long; the client's own timeout ends the
    /// call at the latest.
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
                if (!task.IsCompleted && now - due <= _lateTicks)
                {
                    // Behind every work item already queued (an answer read from the socket among them): if that goes at
                    // once too, and the call is still unanswered, Redis has not answered it. (This measures the queue
                    // itself, where KeepingUp only counts it, which a busy but healthy process may fill.)
                    var queued = now;
                    await BehindQueuedWorkAsync().ConfigureAwait(false);
                    now = TimeProvider.System.GetTimestamp();
                    if (!task.IsCompleted && now - queued <= _lateTicks && ThreadPool.PendingWorkItemCount <= PendingLimit)
                    {
                        var opened = breaker is not null && breaker.OnFailure(SteadyNow()) ? breaker : null;
                        verdict.Blame("timeout", new TimeoutException($"Redis did not answer within {Span(now - sentAt)} (judged after the decision, which this process was late for)."), opened);
                        return;
                    }
                }

                if (task.IsCompleted)
                {
                    break;
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
