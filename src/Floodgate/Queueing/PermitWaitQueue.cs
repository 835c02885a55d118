using Floodgate.Keys;
using Floodgate.Limits;

namespace Floodgate.Queueing;

/// <summary>
/// The requests waiting for a permit of one concurrency key, in one process: a doubly linked list of tickets, bounded,
/// woken one at a time from its head (FIFO) or its tail (LIFO).
/// </summary>
/// <remarks>
/// A release of one of the key's leases (<see cref="WakeOne"/>) wakes one waiter, which tries admission again and, if
/// another request took the permit first, goes back to the end it is woken from, so it keeps its turn. A poll on the
/// queue's <see cref="TimeProvider"/>, while anyone waits, wakes one waiter when none is trying already: the safety net
/// for a release notice that never came (a lost pub/sub message, a release between a rejection and its entry here),
/// one store call per queue per poll, not per waiter.
/// </remarks>
internal sealed class PermitWaitQueue
{
    private readonly Lock _gate = new();
    private readonly PermitQueues _owner;
    private PermitTicket? _head;
    private PermitTicket? _tail;
    private QueueOrder _order;
    private int _waiting;
    private int _members;
    private ITimer? _poll;
    private bool _retired;

    internal PermitWaitQueue(PermitQueues owner, StoreKey key)
    {
        _owner = owner;
        Key = key;
    }

    /// <summary>The key whose permits the queue waits for.</summary>
    public StoreKey Key { get; }

    /// <summary>How many requests are in the queue: waiting, or woken and trying again.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _members;
            }
        }
    }

    /// <summary>
    /// Enters the queue at its tail: <see langword="null"/> with <paramref name="retired"/> clear when it already holds
    /// <paramref name="capacity"/> requests, or with it set when the queue emptied and left its registry meanwhile (enter
    /// the registry's new one).
    /// </summary>
    public PermitTicket? TryEnter(int capacity, QueueOrder order, TimeSpan timeout, CancellationToken cancellationToken, out bool retired)
    {
        PermitTicket ticket;
        lock (_gate)
        {
            retired = _retired;
            if (retired || _members >= capacity)
            {
                return null;
            }

            _order = order;
            ticket = new PermitTicket(this);
            Link(ticket, atTail: true);
            if (_members++ == 0)
            {
                _poll = _owner.Time.CreateTimer(static state => ((PermitWaitQueue)state!).Poll(), this, _owner.PollInterval, _owner.PollInterval);
            }
        }

        ticket.Arm(_owner.Time, timeout, cancellationToken);
        return ticket;
    }

    /// <summary>Wakes the waiter whose turn it is (the oldest for FIFO, the newest for LIFO); <see langword="false"/> when none waits.</summary>
    public bool WakeOne()
    {
        lock (_gate)
        {
            var next = _order == QueueOrder.Lifo ? _tail : _head;
            if (next is null)
            {
                return false;
            }

            Unlink(next);
            next.Complete(PermitWait.Woken);
            return true;
        }
    }

    internal void Requeue(PermitTicket ticket)
    {
        lock (_gate)
        {
            if (ticket.Disposed || ticket.Linked)
            {
                return;
            }

            ticket.Renew();
            if (ticket.Ended is { } ended)
            {
                ticket.Complete(ended);
                return;
            }

            // Back where it is woken from: its turn is next again.
            Link(ticket, atTail: _order == QueueOrder.Lifo);
        }
    }

    internal void End(PermitTicket ticket, PermitWait wait)
    {
        lock (_gate)
        {
            if (ticket.Disposed || ticket.Ended is not null)
            {
                return;
            }

            ticket.Ended = wait;
            if (ticket.Linked)
            {
                Unlink(ticket);
            }

            // A ticket woken and trying again sees it when it comes back (Requeue).
            ticket.Complete(wait);
        }
    }

    internal void Leave(PermitTicket ticket)
    {
        ITimer? poll = null;
        lock (_gate)
        {
            if (ticket.Disposed)
            {
                return;
            }

            ticket.Disposed = true;
            if (ticket.Linked)
            {
                Unlink(ticket);
            }

            if (--_members == 0)
            {
                _retired = true;
                poll = _poll;
                _poll = null;
            }
        }

        if (poll is not null)
        {
            poll.Dispose();
            _owner.Remove(this);
        }
    }

    private void Poll()
    {
        lock (_gate)
        {
            // One waiter trying at a time is enough to find a permit a notice did not announce.
            if (_waiting == _members && _waiting > 0)
            {
                var next = _order == QueueOrder.Lifo ? _tail! : _head!;
                Unlink(next);
                next.Complete(PermitWait.Woken);
                _owner.CountPoll();
            }
        }
    }

    private void Link(PermitTicket ticket, bool atTail)
    {
        if (atTail)
        {
            ticket.Previous = _tail;
            ticket.Next = null;
            if (_tail is null)
            {
                _head = ticket;
            }
            else
            {
                _tail.Next = ticket;
            }

            _tail = ticket;
        }
        else
        {
            ticket.Next = _head;
            ticket.Previous = null;
            if (_head is null)
            {
                _tail = ticket;
            }
            else
            {
                _head.Previous = ticket;
            }

            _head = ticket;
        }

        ticket.Linked = true;
        _waiting++;
    }

    private void Unlink(PermitTicket ticket)
    {
        if (ticket.Previous is null)
        {
            _head = ticket.Next;
        }
        else
        {
            ticket.Previous.Next = ticket.Next;
        }

        if (ticket.Next is null)
        {
            _tail = ticket.Previous;
        }
        else
        {
            ticket.Next.Previous = ticket.Previous;
        }

        ticket.Previous = null;
        ticket.Next = null;
        ticket.Linked = false;
        _waiting--;
    }
}
