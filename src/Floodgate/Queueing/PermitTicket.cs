namespace Floodgate.Queueing;

/// <summary>
/// One request's place in a <see cref="PermitWaitQueue"/>, from the moment it enters until it is disposed, across
/// the turns it may take (woken, tries again, goes back to the head of the queue). Its deadline is one timer on the
/// queue's <see cref="TimeProvider"/>; waiting holds no thread.
/// </summary>
internal sealed class PermitTicket : IDisposable
{
    private readonly PermitWaitQueue _queue;
    private TaskCompletionSource<PermitWait> _signal = NewSignal();
    private ITimer? _deadline;
    private CancellationTokenRegistration _abort;

    internal PermitTicket(PermitWaitQueue queue) => _queue = queue;

    // The queue's list links and state, read and written under its lock only.

    /// <summary>The previous and next ticket in the queue's list.</summary>
    internal PermitTicket? Previous { get; set; }

    /// <inheritdoc cref="Previous"/>
    internal PermitTicket? Next { get; set; }

    /// <summary>Whether the ticket is in the list (waiting), rather than woken and trying again.</summary>
    internal bool Linked { get; set; }

    /// <summary>How the wait ended for good (timed out, canceled), once it has; sticky.</summary>
    internal PermitWait? Ended { get; set; }

    /// <summary>Whether the ticket has left the queue.</summary>
    internal bool Disposed { get; set; }

    /// <summary>The end of the current turn: woken, timed out or canceled. Read by the waiter only.</summary>
    public Task<PermitWait> Turn => Volatile.Read(ref _signal).Task;

    /// <summary>Ends the current turn with <paramref name="wait"/> (under the queue's lock; continuations run elsewhere).</summary>
    internal bool Complete(PermitWait wait) => _signal.TrySetResult(wait);

    /// <summary>Starts a new turn (under the queue's lock).</summary>
    internal void Renew() => Volatile.Write(ref _signal, NewSignal());

    /// <summary>Arms the deadline and the abort, once the ticket is in the list.</summary>
    internal void Arm(TimeProvider time, TimeSpan timeout, CancellationToken cancellationToken)
    {
        _deadline = time.CreateTimer(static state => ((PermitTicket)state!).End(PermitWait.TimedOut), this, timeout, Timeout.InfiniteTimeSpan);
        if (cancellationToken.CanBeCanceled)
        {
            _abort = cancellationToken.UnsafeRegister(static state => ((PermitTicket)state!).End(PermitWait.Canceled), this);
        }
    }

    /// <summary>Goes back to the head of the queue after a turn that found no permit; the deadline still runs.</summary>
    public void Requeue() => _queue.Requeue(this);

    /// <summary>Leaves the queue (whatever the wait ended with), stopping the deadline and the abort.</summary>
    public void Dispose()
    {
        _queue.Leave(this);
        _deadline?.Dispose();

        // Outside the queue's lock: disposing a registration waits for its callback, which takes that lock.
        _abort.Dispose();
    }

    private void End(PermitWait wait) => _queue.End(this, wait);

    private static TaskCompletionSource<PermitWait> NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
