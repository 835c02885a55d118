using Floodgate.Client.Fields;

namespace Floodgate.Client.Pacing;

/// <summary>
/// One limit as this process sees it, shared by every request of one client to one partition: it lets requests go one
/// by one, in the order they came, so that what remains of the quota lasts until its reset; it holds a permit per
/// request in flight for a concurrency limit; and it stops everyone after a rejection until its Retry-After.
/// </summary>
/// <remarks>
/// Time is the <see cref="TimeProvider"/>'s timestamp, and the one timer is the provider's. Before the first answer,
/// and after a rejection, the pacer knows nothing: one request goes alone (a probe) and the others queue for its answer,
/// so that 50 callers starting together neither spend nor get refused all at once. Slots are not promised ahead: each
/// is given when it comes, from what the latest answer said, so a restarted server or a raised limit is followed as
/// soon as one answer says so. Entering with an empty queue and a slot due takes the lock once and allocates nothing.
/// </remarks>
internal sealed class Pacer
{
    /// <summary>The most slots a late timer makes up for at once.</summary>
    internal const int MaxCatchUp = 10;

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly double _frequency;
    private readonly Queue<TaskCompletionSource<Ticket>> _queue = new();
    private ITimer? _timer;
    private long _timerDue = long.MaxValue;

    // Since when the queue has had someone waiting (long.MaxValue: it is empty): a slot that came after it was owed.
    private long _queuedSince = long.MaxValue;

    private Mode _mode = Mode.Unknown;
    private bool _probing;
    private bool _retired;

    private long _quota = -1;
    private long _window;
    private double _remaining;
    private long _resetAt;
    private long _lastSlot;
    private long _nextSlot;
    private long _blockedUntil;
    private long _sequence;
    private long _applied;
    private long _inFlight;

    // When the latest probe went: the callers queued behind it waited its round trip.
    private long _probeSentAt;

    public Pacer(string partition, TimeProvider time)
    {
        Partition = partition;
        _time = time;
        _frequency = time.TimestampFrequency;
    }

    private enum Mode
    {
        Unknown,
        Open,
        Rate,
        Concurrency,
    }

    /// <summary>The partition: a partition key, a policy name, or empty for a route's pacer before its first answer.</summary>
    public string Partition { get; }

    /// <summary>Asks to send: at once (<see cref="Admission.IsNow"/>, with a ticket), or in turn (a task for the ticket).</summary>
    public Admission Enter()
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (_queue.Count == 0 && TryAdmit(now, out var ticket, out _))
            {
                return Admission.Now(ticket);
            }

            var waiter = new TaskCompletionSource<Ticket>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_queue.Count == 0)
            {
                _queuedSince = now;
            }

            _queue.Enqueue(waiter);
            Dispatch(now);
            return Admission.Queued(waiter, EstimateLocked(now, _queue.Count));
        }
    }

    /// <summary>Takes in what an answer to the request of <paramref name="ticket"/> says, and ends its hold.</summary>
    public void Observe(in Ticket ticket, in LimitSignal signal)
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            Undo(ticket);
            if (signal.Kind == SignalKind.None)
            {
                // A server that sends no fields is not paced (until it does).
                if (_mode == Mode.Unknown)
                {
                    _mode = Mode.Open;
                }
            }
            else
            {
                var mode = signal.Kind == SignalKind.Concurrency ? Mode.Concurrency : Mode.Rate;
                if (signal.Quota >= 0)
                {
                    _quota = signal.Quota;
                    _window = signal.Window > 0 ? Ticks(signal.Window) : 0;
                }

                // An older request's answer, overtaken by a newer one's, would take back what the newer one said.
                if (ticket.Sequence >= _applied || _mode != mode)
                {
                    _applied = ticket.Sequence;
                    var sentSince = _sequence - ticket.Sequence;
                    _remaining = Math.Max(0, signal.Remaining - sentSince);
                    _resetAt = now + (signal.Reset > 0 ? Ticks(signal.Reset) : 0);
                }

                var probed = _mode == Mode.Unknown && ticket.Hold == PacerHold.Probe;
                _mode = mode;
                if (mode == Mode.Rate)
                {
                    // Re-plan the next slot from this answer: a restart or a raised limit shortens it at once.
                    _nextSlot = _remaining >= 1 ? _lastSlot + (long)Spacing(Math.Max(now, _lastSlot)) : _resetAt;
                    if (probed)
                    {
                        CreditProbeWait(now);
                    }
                }
            }

            Dispatch(now);
        }
    }

    /// <summary>Takes in an answer to a request that entered another pacer (its route has just learned this partition).</summary>
    public void Learn(in LimitSignal signal)
    {
        long latest;
        lock (_lock)
        {
            latest = _sequence;
        }

        Observe(new Ticket(latest, PacerHold.None), signal);
    }

    /// <summary>Ends the hold of a request that got no answer (it failed, or was cancelled).</summary>
    public void Abandon(in Ticket ticket)
    {
        if (ticket.Hold == PacerHold.None)
        {
            return;
        }

        lock (_lock)
        {
            // A probe's hold passes to the next in the queue; a permit to the first waiting for one.
            Undo(ticket);
            Dispatch(_time.GetTimestamp());
        }
    }

    /// <summary>
    /// A rejection: nobody is let go before <paramref name="retryAfter"/> from now, and what the limit is then is found
    /// out again by one probe.
    /// </summary>
    public void Block(TimeSpan retryAfter)
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            _blockedUntil = Math.Max(_blockedUntil, now + Ticks(retryAfter.TotalSeconds));
            if (_mode != Mode.Open)
            {
                _mode = Mode.Unknown;
            }

            Dispatch(now);
        }
    }

    /// <summary>
    /// Hands this pacer's queue over: its route's answers name a partition, whose pacer paces from now on. Every waiter,
    /// and every later caller, is told to enter that one (<see cref="PacerHold.Moved"/>).
    /// </summary>
    public void Retire()
    {
        lock (_lock)
        {
            _retired = true;
            Dispatch(_time.GetTimestamp());
        }
    }

    /// <summary>What the pacer believes now, for tests and diagnostics.</summary>
    public PacerState Snapshot()
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            return new PacerState(
                _mode.ToString(),
                _quota,
                TimeSpan.FromSeconds(_window / _frequency),
                _remaining,
                Seconds(_resetAt - now),
                Seconds(Math.Max(_blockedUntil, _mode == Mode.Rate ? Math.Max(_nextSlot, _remaining < 1 ? _resetAt : 0) : 0) - now),
                _inFlight,
                _queue.Count);
        }
    }

    /// <summary>The timestamp span of <paramref name="seconds"/>.</summary>
    internal long Ticks(double seconds) => (long)Math.Ceiling(seconds * _frequency);

    private TimeSpan Seconds(long ticks) => ticks > 0 ? TimeSpan.FromSeconds(ticks / _frequency) : TimeSpan.Zero;

    /// <summary>
    /// The callers queued behind a probe waited its round trip, which on a loaded machine (a cold connection, a busy
    /// thread pool) may be a good part of a second: the slots of that wait are owed, as a late timer's are, and go at
    /// once, as many as the server admits at once (what remains) and at most <see cref="MaxCatchUp"/>, less room for the
    /// requests a round trip as long as the probe's will have in flight: every later answer counts those as spent until
    /// it comes back, and a pacer that had spent that room too would wait for the reset. A round trip longer than what
    /// remains lasts credits nothing.
    /// </summary>
    private void CreditProbeWait(long now)
    {
        var spacing = Spacing(now);
        if (_queue.Count == 0 || spacing <= 0 || _queuedSince > _probeSentAt + (long)spacing)
        {
            return;
        }

        var missed = Math.Floor((now - _probeSentAt) / spacing);
        var room = Math.Floor(_remaining) - 1 - Math.Ceiling((now - _probeSentAt) / spacing);
        var owed = Math.Min(Math.Min(missed, room), Math.Min(MaxCatchUp, _queue.Count));
        if (owed >= 1)
        {
            _nextSlot = now - (long)((owed - 1) * spacing);
            _lastSlot = _nextSlot - (long)spacing;
        }
    }

    /// <summary>Lets go as many of the queue as may go now, and sets the timer for the next one.</summary>
    private void Dispatch(long now)
    {
        while (_queue.TryPeek(out var head))
        {
            if (head.Task.IsCompleted)
            {
                // Gave up waiting.
                Dequeue();
                continue;
            }

            if (!TryAdmit(now, out var ticket, out var retryAt))
            {
                if (retryAt > 0)
                {
                    Arm(retryAt, now);
                }

                return;
            }

            Dequeue();
            if (!head.TrySetResult(ticket))
            {
                // It gave up just now: take back what it was given.
                Undo(ticket);
            }
        }
    }

    private void Dequeue()
    {
        _queue.Dequeue();
        if (_queue.Count == 0)
        {
            _queuedSince = long.MaxValue;
        }
    }

    private void Undo(in Ticket ticket)
    {
        if (ticket.Hold == PacerHold.Probe)
        {
            _probing = false;
        }
        else if (ticket.Hold == PacerHold.Permit)
        {
            _inFlight = Math.Max(0, _inFlight - 1);
        }
    }

    /// <summary>Whether a request may go now; if not, when to ask again (0: when an answer or a permit comes back).</summary>
    private bool TryAdmit(long now, out Ticket ticket, out long retryAt)
    {
        ticket = default;
        retryAt = 0;
        if (_retired)
        {
            ticket = new Ticket(0, PacerHold.Moved);
            return true;
        }

        if (now < _blockedUntil)
        {
            retryAt = _blockedUntil;
            return false;
        }

        switch (_mode)
        {
            case Mode.Open:
                ticket = new Ticket(++_sequence, PacerHold.None);
                return true;

            case Mode.Concurrency:
                if (_inFlight >= (_quota < 0 ? 1 : _quota))
                {
                    return false;
                }

                _inFlight++;
                ticket = new Ticket(++_sequence, PacerHold.Permit);
                return true;

            case Mode.Rate:
                return TryTakeSlot(now, out ticket, out retryAt);

            default:
                if (_probing)
                {
                    return false;
                }

                _probing = true;
                _probeSentAt = now;
                ticket = new Ticket(++_sequence, PacerHold.Probe);
                return true;
        }
    }

    private bool TryTakeSlot(long now, out Ticket ticket, out long retryAt)
    {
        ticket = default;
        retryAt = 0;
        if (now < _nextSlot)
        {
            retryAt = _nextSlot;
            return false;
        }

        if (_remaining < 1 && now < _resetAt)
        {
            retryAt = _resetAt;
            return false;
        }

        if (now >= _resetAt)
        {
            if (_window <= 0 || _quota <= 0)
            {
                // Nothing says what the limit is after its reset: find out with one probe.
                _mode = Mode.Unknown;
                return TryAdmit(now, out ticket, out retryAt);
            }

            // The quota is back at the reset (a window starts again; a bucket is full); windows follow one another.
            _remaining = _quota;
            _resetAt += ((now - _resetAt) / _window + 1) * _window;
        }

        var spacing = (long)Spacing(now);
        var from = now - _nextSlot < spacing ? _nextSlot : now;
        if (from == now && _queuedSince <= _nextSlot && spacing > 0)
        {
            // A slot someone was waiting for, given late by more than a spacing (a busy thread pool, a paused process):
            // the slots missed meanwhile were owed, and go at once, as many as remain (which the server admits at once)
            // and at most MaxCatchUp, so the rate over time stays the planned one. A slot nobody waited for (the pacer
            // was idle) is not owed: the schedule starts afresh from the caller.
            var owed = Math.Min(Math.Floor(_remaining) - 1, MaxCatchUp);
            from = owed > 0 ? Math.Max(_nextSlot, now - (long)(owed * spacing)) : now;
        }

        // Slots keep their place in the schedule however late they are given (timer resolution, a busy thread pool), so
        // a late one does not push back the ones after it.
        _remaining -= 1;
        _lastSlot = from;
        _nextSlot = from + spacing;
        ticket = new Ticket(++_sequence, PacerHold.None);
        return true;
    }

    /// <summary>
    /// The time between two requests from <paramref name="at"/>: what remains spread until the reset, but never slower
    /// than the policy's own rate (q per w), which any algorithm admits: the reset is rounded up to whole seconds, and a
    /// bucket refills while it is spent.
    /// </summary>
    private double Spacing(long at)
    {
        var spacing = _remaining >= 1 ? Math.Max(0, _resetAt - at) / _remaining : Math.Max(0, _resetAt - at);
        if (_window > 0 && _quota > 0)
        {
            spacing = Math.Min(spacing, (double)_window / _quota);
        }

        return spacing;
    }

    /// <summary>When the <paramref name="position"/>-th of the queue may go, roughly, to refuse a wait past a deadline.</summary>
    private long EstimateLocked(long now, int position)
    {
        var first = Math.Max(Math.Max(now, _blockedUntil), _mode == Mode.Rate ? Math.Max(_nextSlot, _remaining < 1 ? _resetAt : 0) : 0);
        if (_mode != Mode.Rate)
        {
            return first;
        }

        return first + (long)((position - 1) * Spacing(first));
    }

    private void Arm(long due, long now)
    {
        if (due >= _timerDue && _timerDue > now)
        {
            return;
        }

        _timerDue = due;
        _timer ??= _time.CreateTimer(static state => ((Pacer)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer.Change(TimeSpan.FromSeconds(Math.Max(0, due - now) / _frequency), Timeout.InfiniteTimeSpan);
    }

    private void OnTimer()
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            _timerDue = long.MaxValue;
            Dispatch(now);
        }
    }
}

/// <summary>What a request holds from its pacer while it is in flight.</summary>
internal enum PacerHold : byte
{
    /// <summary>Nothing: a paced slot, or an unpaced server.</summary>
    None,

    /// <summary>The one request sent while the pacer knows nothing; the others wait for its answer.</summary>
    Probe,

    /// <summary>A permit of a concurrency limit.</summary>
    Permit,

    /// <summary>Not a turn: the pacer was retired, enter the route's current one.</summary>
    Moved,
}

/// <summary>A request's place with its pacer: the order it went in, and what it holds.</summary>
internal readonly record struct Ticket(long Sequence, PacerHold Hold);

/// <summary>The pacer's answer to <see cref="Pacer.Enter"/>.</summary>
internal readonly struct Admission
{
    private Admission(Ticket ticket, TaskCompletionSource<Ticket>? waiter, long estimate)
    {
        Ticket = ticket;
        Waiter = waiter;
        Estimate = estimate;
    }

    /// <summary>The request's ticket when it may go at once.</summary>
    public Ticket Ticket { get; }

    /// <summary>The request's place in the queue: completes with its ticket; cancel it to leave the queue.</summary>
    public TaskCompletionSource<Ticket>? Waiter { get; }

    /// <summary>When the request should go, roughly (a timestamp), if it queued.</summary>
    public long Estimate { get; }

    /// <summary>Whether the request may go at once.</summary>
    public bool IsNow => Waiter is null;

    public static Admission Now(Ticket ticket) => new(ticket, null, 0);

    public static Admission Queued(TaskCompletionSource<Ticket> waiter, long estimate) => new(default, waiter, estimate);
}

/// <summary>What a pacer believes: its mode, the policy, what remains and when it resets, when the next may go, permits held, the queue.</summary>
internal readonly record struct PacerState(string Mode, long Quota, TimeSpan Window, double Remaining, TimeSpan ResetIn, TimeSpan NextIn, long InFlight, int Queued);
