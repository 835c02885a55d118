using Floodgate.Client.Fields;

namespace Floodgate.Client.Pacing;

/// <summary>
/// One limit as this process sees it, shared by every request of one client to one partition: it hands out send slots so
/// that what remains of the quota lasts until its reset, holds a permit per request in flight for a concurrency limit,
/// and stops everyone after a rejection until its Retry-After.
/// </summary>
/// <remarks>
/// Time is the <see cref="TimeProvider"/>'s timestamp. Before the first answer, and after a rejection, the pacer knows
/// nothing: one request goes alone (a probe) and the others wait for its answer, so that 50 callers starting together
/// do not all spend, or all get refused, at once. Entering without a wait takes the lock once and allocates nothing.
/// </remarks>
internal sealed class Pacer
{
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly double _frequency;

    private Mode _mode = Mode.Unknown;
    private bool _probing;
    private TaskCompletionSource? _learned;

    private long _quota = -1;
    private long _window;
    private double _remaining;
    private long _resetAt;
    private long _nextSlot;
    private long _blockedUntil;
    private long _sequence;
    private long _applied;
    private int _epoch;

    private long _inFlight;
    private Queue<TaskCompletionSource<bool>>? _permitWaiters;

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

    /// <summary>Asks to send now.</summary>
    /// <returns>
    /// Go now (<see cref="Admission.IsNow"/>) with a ticket; <see cref="Admission.WaitUntil"/> a timestamp, with a ticket for
    /// the slot reserved then (unless <see cref="Admission.Reserved"/> is false: ask again then); or
    /// <see cref="Admission.Signal"/> to await (a probe's answer, or a permit handed over: then the ticket holds it).
    /// </returns>
    public Admission Enter()
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (now < _blockedUntil)
            {
                return Admission.Later(_blockedUntil, default, reserved: false);
            }

            switch (_mode)
            {
                case Mode.Open:
                    return Admission.Now(new Ticket(++_sequence, _epoch, PacerHold.None));
                case Mode.Concurrency:
                    return EnterConcurrency();
                case Mode.Rate:
                    return EnterRate(now);
                default:
                    return EnterUnknown();
            }
        }
    }

    /// <summary>Whether a slot reserved with <paramref name="ticket"/> still stands (no rejection reset the pacer since).</summary>
    public bool Holds(in Ticket ticket)
    {
        lock (_lock)
        {
            return ticket.Epoch == _epoch && _time.GetTimestamp() >= _blockedUntil;
        }
    }

    /// <summary>Takes in what an answer to the request of <paramref name="ticket"/> says, and ends its hold.</summary>
    public void Observe(in Ticket ticket, in LimitSignal signal)
    {
        var now = _time.GetTimestamp();
        TaskCompletionSource? learned = null;
        lock (_lock)
        {
            if (signal.Kind == SignalKind.None)
            {
                // A server that sends no fields is not paced (until it does).
                if (_mode == Mode.Unknown)
                {
                    _mode = Mode.Open;
                    learned = TakeProbe();
                }
                else if (ticket.Hold == PacerHold.Probe)
                {
                    learned = TakeProbe();
                }
            }
            else
            {
                ApplyPolicy(signal);
                if (ticket.Sequence > _applied || _mode != (signal.Kind == SignalKind.Concurrency ? Mode.Concurrency : Mode.Rate))
                {
                    // An older request's answer, overtaken by a newer one, would take back what the newer one said.
                    _applied = ticket.Sequence;
                    var outstanding = _sequence - ticket.Sequence;
                    _remaining = Math.Max(0, signal.Remaining - outstanding);
                    _resetAt = signal.Reset >= 0 ? now + Ticks(signal.Reset) : now;
                }

                var wasUnknown = _mode == Mode.Unknown;
                _mode = signal.Kind == SignalKind.Concurrency ? Mode.Concurrency : Mode.Rate;
                if (wasUnknown || ticket.Hold == PacerHold.Probe)
                {
                    learned = TakeProbe();
                }
            }

            if (ticket.Hold == PacerHold.Permit)
            {
                ReleasePermit();
            }
        }

        learned?.TrySetResult();
    }

    /// <summary>Takes in an answer to a request that entered another pacer (its route has just learned this partition).</summary>
    public void Learn(in LimitSignal signal)
    {
        long latest;
        int epoch;
        lock (_lock)
        {
            latest = _sequence;
            epoch = _epoch;
        }

        Observe(new Ticket(latest, epoch, PacerHold.None), signal);
    }

    /// <summary>Ends the hold of a request that got no answer (it failed, or was cancelled).</summary>
    public void Abandon(in Ticket ticket)
    {
        TaskCompletionSource? learned = null;
        lock (_lock)
        {
            if (ticket.Hold == PacerHold.Probe)
            {
                // Let a waiter probe next.
                learned = TakeProbe();
            }
            else if (ticket.Hold == PacerHold.Permit)
            {
                ReleasePermit();
            }
        }

        learned?.TrySetResult();
    }

    /// <summary>
    /// A rejection: nobody sends before <paramref name="retryAfter"/> from now, and what comes after is found out again
    /// by one probe.
    /// </summary>
    public void Block(TimeSpan retryAfter)
    {
        var until = _time.GetTimestamp() + Ticks(retryAfter.TotalSeconds);
        lock (_lock)
        {
            _blockedUntil = Math.Max(_blockedUntil, until);
            _epoch++;
            if (_mode != Mode.Open)
            {
                _mode = Mode.Unknown;
            }
        }
    }

    /// <summary>Gives back a permit that was handed to a waiter who stopped waiting.</summary>
    public void ReturnPermit()
    {
        lock (_lock)
        {
            ReleasePermit();
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
                _window > 0 ? TimeSpan.FromSeconds(_window / _frequency) : TimeSpan.Zero,
                _remaining,
                _resetAt > now ? TimeSpan.FromSeconds((_resetAt - now) / _frequency) : TimeSpan.Zero,
                _nextSlot > now ? TimeSpan.FromSeconds((_nextSlot - now) / _frequency) : TimeSpan.Zero,
                _inFlight);
        }
    }

    /// <summary>The timestamp <paramref name="seconds"/> from 0.</summary>
    internal long Ticks(double seconds) => (long)Math.Ceiling(seconds * _frequency);

    private Admission EnterUnknown()
    {
        if (!_probing)
        {
            _probing = true;
            return Admission.Now(new Ticket(++_sequence, _epoch, PacerHold.Probe));
        }

        _learned ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return Admission.Await(_learned.Task, default);
    }

    private Admission EnterConcurrency()
    {
        var permits = _quota < 0 ? 1 : _quota;
        if (_inFlight < permits)
        {
            _inFlight++;
            return Admission.Now(new Ticket(++_sequence, _epoch, PacerHold.Permit));
        }

        // Queued in order; a released permit is handed to the first waiter still waiting.
        var waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        (_permitWaiters ??= new Queue<TaskCompletionSource<bool>>()).Enqueue(waiter);
        return Admission.AwaitPermit(waiter, new Ticket(++_sequence, _epoch, PacerHold.Permit));
    }

    private Admission EnterRate(long now)
    {
        var start = Math.Max(now, _nextSlot);
        if (_remaining < 1 && start < _resetAt)
        {
            start = _resetAt;
        }

        if (start >= _resetAt)
        {
            if (_window <= 0 || _quota <= 0)
            {
                // Nothing says what the limit is after its reset: wait for it, then find out with one probe.
                if (start > now)
                {
                    return Admission.Later(start, default, reserved: false);
                }

                _mode = Mode.Unknown;
                return EnterUnknown();
            }

            // The quota is back at the reset (a window starts again; a bucket is full).
            _remaining = _quota;
            _resetAt = start + _window;
        }

        // Spread what remains until the reset, but never slower than the policy's own rate (q per w), which any
        // algorithm admits: the reset is rounded up to whole seconds, and a bucket refills while it is spent.
        var spacing = (_resetAt - start) / _remaining;
        if (_window > 0 && _quota > 0)
        {
            spacing = Math.Min(spacing, (double)_window / _quota);
        }

        _remaining -= 1;
        _nextSlot = start + (long)spacing;
        var ticket = new Ticket(++_sequence, _epoch, PacerHold.None);
        return start <= now ? Admission.Now(ticket) : Admission.Later(start, ticket, reserved: true);
    }

    private void ApplyPolicy(in LimitSignal signal)
    {
        if (signal.Quota >= 0)
        {
            _quota = signal.Quota;
        }

        _window = signal.Window > 0 ? Ticks(signal.Window) : signal.Kind == SignalKind.Concurrency || signal.Quota >= 0 ? 0 : _window;
    }

    private TaskCompletionSource? TakeProbe()
    {
        _probing = false;
        var learned = _learned;
        _learned = null;
        return learned;
    }

    private void ReleasePermit()
    {
        while (_permitWaiters is { Count: > 0 } waiters)
        {
            // The permit passes to the waiter as it is: the count in flight does not change.
            if (waiters.Dequeue().TrySetResult(true))
            {
                return;
            }
        }

        _inFlight = Math.Max(0, _inFlight - 1);
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
}

/// <summary>A request's place with its pacer: the order it entered in, the pacer's epoch then, and what it holds.</summary>
internal readonly record struct Ticket(long Sequence, int Epoch, PacerHold Hold);

/// <summary>The pacer's answer to <see cref="Pacer.Enter"/>.</summary>
internal readonly struct Admission
{
    private Admission(long waitUntil, Ticket ticket, bool reserved, Task? signal, TaskCompletionSource<bool>? permit)
    {
        WaitUntil = waitUntil;
        Ticket = ticket;
        Reserved = reserved;
        Signal = signal;
        Permit = permit;
    }

    /// <summary>The timestamp to wait for; 0 to go now or await <see cref="Signal"/>.</summary>
    public long WaitUntil { get; }

    /// <summary>The request's ticket, when it has one.</summary>
    public Ticket Ticket { get; }

    /// <summary>Whether a slot at <see cref="WaitUntil"/> is reserved for the request (else ask again then).</summary>
    public bool Reserved { get; }

    /// <summary>A probe's answer to await, then ask again; or a permit's hand-over (<see cref="Permit"/>).</summary>
    public Task? Signal { get; }

    /// <summary>The permit waiter, to cancel (or give the permit back) when the caller stops waiting.</summary>
    public TaskCompletionSource<bool>? Permit { get; }

    /// <summary>Whether the request may go at once.</summary>
    public bool IsNow => WaitUntil == 0 && Signal is null;

    public static Admission Now(Ticket ticket) => new(0, ticket, true, null, null);

    public static Admission Later(long at, Ticket ticket, bool reserved) => new(at, ticket, reserved, null, null);

    public static Admission Await(Task signal, Ticket ticket) => new(0, ticket, false, signal, null);

    public static Admission AwaitPermit(TaskCompletionSource<bool> permit, Ticket ticket) => new(0, ticket, true, permit.Task, permit);
}

/// <summary>What a pacer believes: its mode, the policy, what remains and when it resets, when the next slot is, and the permits held.</summary>
internal readonly record struct PacerState(string Mode, long Quota, TimeSpan Window, double Remaining, TimeSpan ResetIn, TimeSpan NextSlotIn, long InFlight);
