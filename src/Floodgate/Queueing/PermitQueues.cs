using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Queueing;

/// <summary>
/// The permit queues of one store's concurrency keys in this process, one per key with waiters (a queue leaves when
/// its last waiter does). Owned by the store, not by an engine, so that the engines a reload swaps in and out over one
/// store share them: a request waiting under the old policy is woken by a release under the new.
/// </summary>
internal sealed class PermitQueues
{
    /// <summary>How often a queue with waiters lets one try again without being told of a release.</summary>
    public static readonly TimeSpan DefaultPollInterval = TimeSpan.FromMilliseconds(200);

    private static readonly ConditionalWeakTable<IRateLimitStore, PermitQueues> ByStore = [];

    private readonly ConcurrentDictionary<StoreKey, PermitWaitQueue> _queues = new();
    private long _polls;
    private long _notices;

    internal PermitQueues(TimeProvider time, TimeSpan pollInterval)
    {
        Time = time;
        PollInterval = pollInterval;
    }

    /// <summary>The clock of the deadlines and the poll.</summary>
    public TimeProvider Time { get; }

    /// <summary>How often a queue with waiters wakes one of them unprompted.</summary>
    public TimeSpan PollInterval { get; }

    /// <summary>How many waiters the polls have woken, in every queue.</summary>
    public long Polls => Interlocked.Read(ref _polls);

    /// <summary>How many release notices from other processes arrived.</summary>
    public long Notices => Interlocked.Read(ref _notices);

    /// <summary>How many keys have waiters now.</summary>
    public int Keys => _queues.Count;

    /// <summary>How many requests are in the queues now (waiting, or woken and trying again).</summary>
    public int Waiters => _queues.Values.Sum(q => q.Count);

    /// <summary>
    /// The queues of <paramref name="store"/>, made on first use on <paramref name="time"/>; a store that tells of other
    /// processes' releases (<see cref="IPermitReleaseNotifier"/>) is listened to from then on.
    /// </summary>
    public static PermitQueues For(IRateLimitStore store, TimeProvider time) => For(store, time, DefaultPollInterval);

    /// <summary>
    /// The queues of <paramref name="store"/>, polling every <paramref name="pollInterval"/> if they are made now (a test
    /// that must tell a notice's wake-up from a poll's makes them before any engine does).
    /// </summary>
    internal static PermitQueues For(IRateLimitStore store, TimeProvider time, TimeSpan pollInterval) =>
        ByStore.GetValue(store, s =>
        {
            var queues = new PermitQueues(time, pollInterval);
            if (s is IPermitReleaseNotifier notifier)
            {
                notifier.PermitReleased += queues.OnNotice;
            }

            return queues;
        });

    /// <summary>
    /// Enters the queue of <paramref name="key"/> with <paramref name="limit"/>'s size and order, for at most
    /// <paramref name="timeout"/>; <see langword="null"/> when it is full.
    /// </summary>
    public PermitTicket? TryEnter(StoreKey key, Limit limit, TimeSpan timeout, CancellationToken cancellationToken)
    {
        while (true)
        {
            var queue = _queues.GetOrAdd(key, static (k, owner) => new PermitWaitQueue(owner, k), this);
            var ticket = queue.TryEnter(limit.QueueSize, limit.QueueOrder, timeout, cancellationToken, out var retired);
            if (!retired)
            {
                return ticket;
            }

            // It emptied and left between the lookup and the entry: a new one takes its place.
            _queues.TryRemove(new KeyValuePair<StoreKey, PermitWaitQueue>(key, queue));
        }
    }

    /// <summary>Wakes one waiter of <paramref name="key"/>, if any: one of its leases was released.</summary>
    public void Wake(StoreKey key)
    {
        if (_queues.TryGetValue(key, out var queue))
        {
            queue.WakeOne();
        }
    }

    /// <summary>The queue of <paramref name="key"/>, if it has waiters; for tests.</summary>
    internal PermitWaitQueue? Find(StoreKey key) => _queues.TryGetValue(key, out var queue) ? queue : null;

    internal void Remove(PermitWaitQueue queue) => _queues.TryRemove(new KeyValuePair<StoreKey, PermitWaitQueue>(queue.Key, queue));

    internal void CountPoll() => Interlocked.Increment(ref _polls);

    private void OnNotice(StoreKey key)
    {
        Interlocked.Increment(ref _notices);
        Wake(key);
    }
}
