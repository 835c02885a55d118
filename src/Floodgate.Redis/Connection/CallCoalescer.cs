using System.Diagnostics.Metrics;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// Sends the decision script's calls to a single node so that concurrent decisions share runs: a call made while no
/// run is in flight goes at once, alone; calls made while one is in flight wait, and go together as the next run the
/// moment it is answered. The script decides a run's calls in order, each as if it had been sent alone (its own
/// stages, and what the calls before it wrote), so coalescing changes no decision; it saves the server a script
/// invocation, a clock read, a read and a write of every key the calls share, and both sides a message per call.
/// </summary>
/// <remarks>
/// Under load the runs grow to what arrives during one round trip, so a call waits at most one run longer than it
/// would have alone. A run left unanswered for the store's timeout no longer holds the queue: the next call goes at
/// once, with whatever waited. A call whose decision has given up (timed out or cancelled) by the time its run goes is
/// not sent. A run stopped by an error (one call's key of another type; a run refused as one, as when the connection
/// turns out to be a cluster's) is sent again call by call, so that only the call at fault fails; a run failing for what
/// fails every call alike (NOSCRIPT, a lost connection, a timeout) fails them all.
/// </remarks>
internal sealed class CallCoalescer
{
    // The most calls one run carries (about 0.5 ms of a server's time for requests of two tiers).
    private const int MaxRunCalls = 64;

    private readonly Func<RedisKey[], RedisValue[], Task<RedisResult>> _send;
    private readonly long _stallTicks;
    private readonly Counter<long>? _runs;
    // Guards the queue and the run in flight (_inFlight, _sentAt, _lastRun).
    private readonly Lock _queueLock = new();
    private List<QueuedCall> _queue = [];

    // The run in flight (its number), 0 when none; when it was sent; the last run's number.
    private long _inFlight;
    private long _sentAt;

    /// <summary>The answer of the run last sent, for <see cref="InFlight"/>; written without the lock, read as a hint.</summary>
    private Task<RedisResult>? _lastRunTask;
    private long _lastRun;
    private long _runCount;

    /// <param name="send">Sends the script by its hash with these keys and arguments; a failure, even a synchronous one, is a faulted task.</param>
    /// <param name="stall">How long a run may go unanswered before it no longer holds the queue.</param>
    /// <param name="runs">Counts the runs sent.</param>
    public CallCoalescer(Func<RedisKey[], RedisValue[], Task<RedisResult>> send, TimeSpan stall, Counter<long>? runs = null)
    {
        _send = send;
        _runs = runs;
        _stallTicks = Math.Max(1, (long)(stall.TotalSeconds * TimeProvider.System.TimestampFrequency));
    }

    /// <summary>How many runs were sent (a call sent alone is one).</summary>
    public long Runs => Volatile.Read(ref _runCount);

    /// <summary>
    /// Sends one call of the script (its keys, and its arguments with now = '' and its number of groups first), now or
    /// with the next run; the task is its own answer, as if it had been sent alone.
    /// </summary>
    /// <param name="keys">The call's keys.</param>
    /// <param name="values">The call's arguments.</param>
    /// <param name="deadline">The <see cref="TimeProvider.GetTimestamp"/> after which the call's decision has given up.</param>
    /// <param name="cancellation">The decision's token: once it fires, the call is not sent if it has not been yet.</param>
    public Task<RedisResult> Evaluate(RedisKey[] keys, RedisValue[] values, long deadline, CancellationToken cancellation)
    {
        List<QueuedCall>? stalled = null;
        long run;
        lock (_queueLock)
        {
            var now = TimeProvider.System.GetTimestamp();
            if (_inFlight != 0)
            {
                if (now - _sentAt < _stallTicks)
                {
                    var queued = new QueuedCall(keys, values, deadline, cancellation);
                    _queue.Add(queued);
                    return queued.Task;
                }

                // The run in flight stalled (a hung server is for the breakers to judge): the calls that waited for it
                // go now, with this one.
                if (_queue.Count > 0)
                {
                    stalled = _queue;
                    _queue = [];
                }
            }

            run = Begin(now);
        }

        if (stalled is not null)
        {
            var call = new QueuedCall(keys, values, deadline, cancellation);
            stalled.Add(call);
            if (!Send(stalled, run))
            {
                Answered(run);
            }

            return call.Task;
        }

        CountRun();
        var task = Alone(keys, values);
        Volatile.Write(ref _lastRunTask, task);
        Await(task, new Run(this, run, null));
        return task;
    }

    /// <summary>Whether <paramref name="task"/> is the answer of a call that waited for a run (and not of one sent alone at once).</summary>
    public static bool WasQueued(Task<RedisResult> task) => task.AsyncState is SendState;

    /// <summary>Whether <paramref name="task"/> is the answer of a queued call that was never sent (its decision gave up first).</summary>
    public static bool WasNeverSent(Task<RedisResult> task) => task.AsyncState is SendState { IsSent: false } && task.IsCompleted;

    /// <summary>
    /// When the queued call of <paramref name="task"/> went out in a run (a <see cref="TimeProvider.System"/> timestamp);
    /// 0 for a call sent alone at once, or not sent.
    /// </summary>
    public static long SentAt(Task<RedisResult> task) => task.AsyncState is SendState { IsSent: true } state ? state.SentAt : 0;

    /// <summary>
    /// Gives up on the call of <paramref name="task"/> if it still waits for a run: it will never be sent (and is answered
    /// as never sent when its run would have gone). <see langword="false"/> when it was sent, or was never queued.
    /// </summary>
    public static bool TryAbandon(Task<RedisResult> task) => task.AsyncState is SendState state && state.TryAbandon();

    /// <summary>
    /// The run the queue waits for: when it was sent (a <see cref="TimeProvider.System"/> timestamp) and its answer; 0 and
    /// <see langword="null"/> when none is in flight. The answer may be the run's before it, already completed, when read
    /// as the run is being sent.
    /// </summary>
    public (long SentAt, Task<RedisResult>? Answer) InFlight()
    {
        lock (_queueLock)
        {
            return _inFlight != 0 ? (_sentAt, Volatile.Read(ref _lastRunTask)) : (0, null);
        }
    }

    private long Begin(long now)
    {
        _inFlight = ++_lastRun;
        _sentAt = now;
        return _inFlight;
    }

    private void CountRun()
    {
        Interlocked.Increment(ref _runCount);
        _runs?.Add(1);
    }

    /// <summary>
    /// Run <paramref name="run"/> was answered: the calls that waited for it go now, as the next run. A loop, not a
    /// recursion: when none of them is still wanted, that run is over at once and the calls queued meanwhile go next.
    /// </summary>
    private void Answered(long run)
    {
        while (true)
        {
            List<QueuedCall> next;
            lock (_queueLock)
            {
                if (_inFlight != run)
                {
                    // A stalled run, answered after the queue moved on without it.
                    return;
                }

                if (_queue.Count == 0)
                {
                    _inFlight = 0;
                    return;
                }

                next = _queue;
                _queue = [];
                run = Begin(TimeProvider.System.GetTimestamp());
            }

            if (Send(next, run))
            {
                return;
            }
        }
    }

    /// <summary>Sends the calls still wanted as run <paramref name="run"/>; <see langword="false"/> when none was, so nothing went.</summary>
    private bool Send(List<QueuedCall> calls, long run)
    {
        // A call whose decision gave up while it waited (timed out, cancelled, or abandoned) is not sent: it takes nothing.
        var now = TimeProvider.System.GetTimestamp();
        var live = 0;
        for (var i = 0; i < calls.Count; i++)
        {
            if (calls[i].Deadline > now && !calls[i].Cancellation.IsCancellationRequested && calls[i].TryMarkSent(now))
            {
                calls[live++] = calls[i];
            }
            else
            {
                calls[i].TrySetException(new TimeoutException("The decision gave up before its Redis call was sent."));
            }
        }

        calls.RemoveRange(live, calls.Count - live);
        if (calls.Count == 0)
        {
            return false;
        }

        // Runs of at most MaxRunCalls, all sent at once: one long run would hold the server, and the calls after it, for
        // longer. The last is the one the queue waits for (a connection answers in order).
        for (var from = 0; from < calls.Count; from += MaxRunCalls)
        {
            var last = from + MaxRunCalls >= calls.Count;
            var part = from == 0 && last ? calls : calls.GetRange(from, Math.Min(MaxRunCalls, calls.Count - from));
            CountRun();
            var task = part.Count == 1 ? Alone(part[0].Keys, part[0].Values) : Together(part);
            if (last)
            {
                Volatile.Write(ref _lastRunTask, task);
            }

            Await(task, new Run(this, last ? run : 0, part));
        }

        return true;
    }

    /// <summary>
    /// Hands <paramref name="task"/>'s answer to <paramref name="run"/> on the thread that completes it. A send that
    /// failed at once (no master during a Sentinel failover, say) is handed over on a thread of the pool instead: run
    /// inline it would send the next run from inside this one's send, and under a flood of calls every failed run would
    /// nest one level deeper on the stack.
    /// </summary>
    private static void Await(Task<RedisResult> task, Run run)
    {
        if (task.IsCompleted)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Run.Answered(state.Task), (Run: run, Task: task), preferLocal: false);
            return;
        }

        _ = task.ContinueWith(static (t, state) => ((Run)state!).Answered(t), run, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private Task<RedisResult> Alone(RedisKey[] keys, RedisValue[] values) => _send(keys, values);

    /// <summary>
    /// One run of several calls: their keys one after the other; now = '', minus their number, then each call's arguments
    /// after its now (from its head, its number of groups), as <see cref="DecideProtocol"/> lays a run out.
    /// </summary>
    private Task<RedisResult> Together(List<QueuedCall> calls)
    {
        // A run shares one now: each call keeps its arguments from its head on.
        const int FirstKept = DecideProtocol.ArgHead;
        int keyCount = 0, valueCount = DecideProtocol.ArgHeader;
        foreach (var call in calls)
        {
            keyCount += call.Keys.Length;
            valueCount += call.Values.Length - FirstKept;
        }

        var keys = new RedisKey[keyCount];
        var values = new RedisValue[valueCount];
        values[DecideProtocol.ArgNow] = RedisValue.EmptyString;
        values[DecideProtocol.ArgHead] = -calls.Count;
        int k = 0, v = DecideProtocol.ArgHeader;
        foreach (var call in calls)
        {
            call.Keys.CopyTo(keys, k);
            k += call.Keys.Length;
            Array.Copy(call.Values, FirstKept, values, v, call.Values.Length - FirstKept);
            v += call.Values.Length - FirstKept;
        }

        return _send(keys, values);
    }

    /// <summary>
    /// A run, and what to do when it is answered: let the queue go on (unless its number is 0), and hand its queued
    /// calls (none for a call sent alone, which holds the run's own task) their answers.
    /// </summary>
    private sealed class Run(CallCoalescer coalescer, long number, List<QueuedCall>? calls)
    {
        public void Answered(Task<RedisResult> task)
        {
            // The next run goes first, so the server is kept busy while this one's answers are handed out.
            if (number != 0)
            {
                coalescer.Answered(number);
            }

            if (calls is null)
            {
                return;
            }

            var result = task.IsCompletedSuccessfully ? task.Result : null;
            if (calls.Count == 1)
            {
                // Sent alone: the answer is the call's own.
                Complete(calls[0], result, task);
                return;
            }

            var error = task.Exception?.InnerException;
            if (error is RedisCommandException || (error is RedisServerException && !error.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal)))
            {
                // Stopped by one call's error (a key of another type), or refused for something no call alone would
                // be (a connection just found to be a cluster): each call alone, so that only its own fails. The run
                // wrote no strings; a lease it granted is found again by its call, not counted twice (decide.lua).
                foreach (var call in calls)
                {
                    coalescer.CountRun();
                    _ = coalescer.Alone(call.Keys, call.Values).ContinueWith(
                        static (t, state) => Complete((QueuedCall)state!, t.IsCompletedSuccessfully ? t.Result : null, t),
                        call,
                        CancellationToken.None,
                        TaskContinuationOptions.ExecuteSynchronously,
                        TaskScheduler.Default);
                }

                return;
            }

            var shaped = result is not null && result.Resp2Type == ResultType.Array && result.Length == calls.Count;
            for (var i = 0; i < calls.Count; i++)
            {
                if (shaped)
                {
                    calls[i].TrySetResult(result![i]);
                }
                else if (result is not null)
                {
                    calls[i].TrySetException(new RedisException("The decision script answered a run of calls in an unexpected shape."));
                }
                else
                {
                    Complete(calls[i], null, task);
                }
            }
        }

        /// <summary>Completes <paramref name="call"/> with <paramref name="result"/>, or as <paramref name="task"/> failed.</summary>
        private static void Complete(QueuedCall call, RedisResult? result, Task<RedisResult> task)
        {
            if (result is not null)
            {
                call.TrySetResult(result);
            }
            else
            {
                call.TrySetException(task.Exception?.InnerException ?? new TaskCanceledException(task));
            }
        }
    }

    /// <summary>
    /// A call waiting for the next run; its task is its answer. Its caller's continuation runs on a thread of its own, so
    /// that the answers of one run are handed out at once and no caller's code runs on the thread that hands them out.
    /// </summary>
    private sealed class QueuedCall(RedisKey[] keys, RedisValue[] values, long deadline, CancellationToken cancellation)
        : TaskCompletionSource<RedisResult>(new SendState(), TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public RedisKey[] Keys { get; } = keys;

        public RedisValue[] Values { get; } = values;

        public long Deadline { get; } = deadline;

        public CancellationToken Cancellation { get; } = cancellation;

        /// <summary>Marks the call sent at <paramref name="now"/>; <see langword="false"/> when its decision abandoned it first.</summary>
        public bool TryMarkSent(long now) => ((SendState)Task.AsyncState!).TryMarkSent(now);
    }

    /// <summary>
    /// The state of a queued call's task, so that <see cref="WasNeverSent"/>, <see cref="SentAt"/> and
    /// <see cref="TryAbandon"/> can tell from the task alone. Sending and abandoning race for it: exactly one wins.
    /// </summary>
    private sealed class SendState
    {
        private const int Queued = 0;
        private const int Sent = 1;
        private const int Abandoned = 2;

        private int _state;

        /// <summary>Whether the call went out in a run; a call dropped for want of time, or abandoned, never does.</summary>
        public bool IsSent => Volatile.Read(ref _state) == Sent;

        /// <summary>When the call went out (a <see cref="TimeProvider.System"/> timestamp); read once <see cref="IsSent"/>.</summary>
        public long SentAt { get; private set; }

        public bool TryMarkSent(long now)
        {
            // Written before the state, which publishes it.
            SentAt = now;
            return Interlocked.CompareExchange(ref _state, Sent, Queued) == Queued;
        }

        public bool TryAbandon() => Interlocked.CompareExchange(ref _state, Abandoned, Queued) == Queued;
    }
}
