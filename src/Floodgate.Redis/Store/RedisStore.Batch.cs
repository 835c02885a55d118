using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// The state of one decision: its batch, rounds, identity groups and script calls.
public sealed partial class RedisStore
{
    /// <summary>Where a check's answer comes from.</summary>
    private enum Source : byte
    {
        /// <summary>The script, in Redis.</summary>
        Remote,

        /// <summary>The script, in Redis, which also takes a new leased slice.</summary>
        Acquire,

        /// <summary>A leased slice, spent locally.</summary>
        Leased,

        /// <summary>The over-limit cache: denied locally.</summary>
        Cached,

        /// <summary>Nothing: a sibling of its identity was denied by the over-limit cache.</summary>
        Unevaluated,
    }

    /// <summary>The state of one decision: the batch, its stages, and where each check's answer comes from.</summary>
    private sealed class Batch(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, long? serverNow, long localNow, long deadline, CancellationToken cancellation)
    {
        /// <summary>The decision's caller's token: a call still waiting for a run when it fires is never sent.</summary>
        public CancellationToken Cancellation { get; } = cancellation;

        public ReadOnlyMemory<RateLimitCheck> Checks { get; } = checks;

        public ReadOnlyMemory<int> StageEnds { get; } = stageEnds;

        public Memory<StoreOutcome> Outcomes { get; } = outcomes;

        public long? ServerNow { get; } = serverNow;

        public long LocalNow { get; } = localNow;

        /// <summary>A <see cref="TimeProvider.System"/> timestamp; brought forward to now by <see cref="Expire"/>.</summary>
        public long Deadline { get; private set; } = deadline;

        /// <summary>The deadline as the decision was given it, before <see cref="Expire"/>: the decision began one timeout earlier.</summary>
        public long GivenDeadline { get; } = deadline;

        /// <summary>
        /// How long after the deadline this process got to see that a wait had timed out (<see cref="TimeProvider.System"/>
        /// ticks; 0 or less when on time): the thread pool's or the CPU's delay, which Redis must not be blamed for.
        /// </summary>
        public long LateBy { get; private set; } = long.MinValue;

        public Source[] Sources { get; } = new Source[checks.Length];

        /// <summary>The last round settled before the rounds that follow it, linked to the ones before (<see cref="Round.Earlier"/>).</summary>
        public Round? Settled { get; set; }

        /// <summary>Ends the decision's time: a wait for it timed out, so no call is sent any more; notes how late that was seen.</summary>
        public void Expire()
        {
            var now = TimeProvider.System.GetTimestamp();
            LateBy = Math.Max(LateBy, now - Deadline);
            Deadline = Math.Min(Deadline, now);
        }
    }

    /// <summary>The stages from <see cref="First"/> to <see cref="Last"/>, decided by one set of calls sent together.</summary>
    private sealed class Round(int first)
    {
        public int First { get; } = first;

        public int Last { get; set; } = first;

        public List<Group> Groups { get; } = [];

        public List<Call>? Calls { get; set; }

        /// <summary>The round settled before this one, once this one is settled and rounds follow it.</summary>
        public Round? Earlier { get; set; }
    }

    /// <summary>The checks of one identity in one stage: they commit all or nothing.</summary>
    private sealed class Group(List<int> members, int stage)
    {
        public List<int> Members { get; } = members;

        public int Stage { get; } = stage;

        public int RemoteCount { get; set; }

        public int Slot { get; set; } = NoSlot;

        public int[]? Remote { get; set; }

        public long[]? LeaseIds { get; set; }

        public bool Evaluated { get; set; }

        public bool Failed { get; set; }

        /// <summary>
        /// By member, as in <see cref="Members"/>: the lease the decided group holds (granted in Redis, or by the local
        /// fallback), 0 for none; <see langword="null"/> while it holds none.
        /// </summary>
        public long[]? Leases { get; private set; }

        public void Hold(int check, long leaseId) => (Leases ??= new long[Members.Count])[Members.IndexOf(check)] = leaseId;
    }

    /// <summary>One script call: groups of one hash slot, in stage order.</summary>
    private sealed class Call(int slot)
    {
        public int Slot { get; } = slot;

        /// <summary>The breaker of the node the call goes to, which let it through.</summary>
        public CircuitBreaker? Breaker { get; set; }

        public List<Group> Groups { get; } = [];

        public Task<RedisResult>? Task { get; set; }

        /// <summary>
        /// When <see cref="Task"/> was handed to the client (a <see cref="TimeProvider.System"/> timestamp); a call that
        /// waited for a run went out later (<see cref="CallCoalescer.SentAt"/>).
        /// </summary>
        public long SentAt { get; set; }

        public RedisKey[]? Keys { get; set; }

        public RedisValue[]? Values { get; set; }

        public bool Resent { get; set; }

        /// <summary>Answered (NOSCRIPT, TRYAGAIN, or the server's calendar) when no time was left to send it again: not sent again.</summary>
        public bool Late { get; set; }

        /// <summary>Why the call is being sent again.</summary>
        public Resend Again { get; set; }

        /// <summary>Sent as the script's text (after a NOSCRIPT), not by its hash.</summary>
        public bool SendScript { get; set; }

        /// <summary>How often the call was sent again after NOSCRIPT.</summary>
        public int ScriptResends { get; set; }
    }

    /// <summary>Why a call is sent again.</summary>
    private enum Resend : byte
    {
        TryAgain,
        NoScript,
        Calendar,
    }
}
