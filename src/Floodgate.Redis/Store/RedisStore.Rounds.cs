using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// A decision as rounds: each answers what it can locally and sends the rest in one call per hash slot, then is settled.
public sealed partial class RedisStore
{
    /// <summary>Any key: its hash slot is -1 exactly when the connection is not to a cluster.</summary>
    private static readonly RedisKey SlotProbe = "floodgate";

    /// <summary>
    /// Decides a batch stage by stage; <paramref name="deadline"/> (a <see cref="TimeProvider.System"/> timestamp) bounds
    /// every wait of the decision together, so a slow or failing Redis costs at most one timeout.
    /// </summary>
    /// <returns>How many stages were decided (see <see cref="IRateLimitStore.DecideStagesAsync"/>).</returns>
    private ValueTask<int> Decide(ReadOnlyMemory<RateLimitCheck> checksMemory, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomesMemory, long? serverNow, bool mayWait, long deadline, CancellationToken cancellationToken)
    {
        StagedDecisions.Validate(checksMemory.Length, stageEnds.Span, outcomesMemory.Length);
        var checks = checksMemory.Span;
        foreach (ref readonly var check in checks)
        {
            if (check.Cost < 0 || check.Limit is null)
            {
                throw new ArgumentException($"A check needs a limit and a cost of 0 or more, not {check.Cost}.", nameof(checksMemory));
            }
        }

        if (checks.Length == 0)
        {
            return new ValueTask<int>(0);
        }

        var localNow = serverNow ?? LocalNow();
        if (mayWait)
        {
            // A leased key whose slice is spent while another request of this replica takes the next one: wait for that
            // slice (at most the timeout) rather than going to Redis alongside it.
            List<Task>? pending = null;
            foreach (ref readonly var check in checks)
            {
                if (IsLeased(check) && _slices.Pending(check, localNow) is { } task)
                {
                    (pending ??= []).Add(task);
                }
            }

            if (pending is not null)
            {
                return WaitForSlices(pending, checksMemory, stageEnds, outcomesMemory, serverNow, deadline, cancellationToken);
            }
        }

        var batch = new Batch(checksMemory, stageEnds, outcomesMemory, serverNow, localNow, deadline, cancellationToken);
        var stage = 0;
        while (true)
        {
            var round = StartRound(batch, stage);
            if (round.Calls is not null)
            {
                return RunAsync(batch, round, cancellationToken);
            }

            if (Settle(batch, round, out var next))
            {
                return new ValueTask<int>(next);
            }

            stage = next;
        }
    }

    /// <summary>Waits for a round's calls, settles it, and starts and runs the rounds after it.</summary>
    private async ValueTask<int> RunAsync(Batch batch, Round round, CancellationToken cancellationToken)
    {
        while (true)
        {
            await Complete(batch, round, cancellationToken).ConfigureAwait(false);
            if (Settle(batch, round, out var next))
            {
                return next;
            }

            while (true)
            {
                round = StartRound(batch, next);
                if (round.Calls is not null)
                {
                    break;
                }

                if (Settle(batch, round, out next))
                {
                    return next;
                }
            }
        }
    }

    private async ValueTask<int> WaitForSlices(List<Task> pending, ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, long? serverNow, long deadline, CancellationToken cancellationToken)
    {
        var slices = Task.WhenAll(pending);
        try
        {
            await slices.WaitAsync(Remaining(deadline), TimeProvider.System, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!slices.IsCompleted)
        {
            // The wait took the whole timeout (whatever the timer's granularity left on the clock): no call is sent, and
            // the checks without a slice are answered by the failure mode.
            deadline = Math.Min(deadline, TimeProvider.System.GetTimestamp());
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Decide without the slice: strictly in Redis.
        }

        // Only the time left: waiting for the slice and asking Redis share one timeout.
        return await Decide(checks, stageEnds, outcomes, serverNow, false, deadline, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts a round from stage <paramref name="first"/>: answers what it can locally (the over-limit cache, leased
    /// slices) and sends the rest. On a single node one call carries every stage up to the first that is known to
    /// reject, and the script stops at the first stage that rejects; on a cluster a round's stages must share one hash
    /// slot, so a round usually holds one stage, one call per slot.
    /// </summary>
    private Round StartRound(Batch batch, int first)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var ends = batch.StageEnds.Span;
        var round = new Round(first);
        var connection = Current;
        var standalone = connection is null || connection.HashSlot(SlotProbe) == NoSlot;
        int? roundSlot = null;
        var manySlots = false;
        var remoteGroups = 0;
        for (var stage = first; stage < ends.Length; stage++)
        {
            var groups = Groups(batch, stage);
            if (!standalone)
            {
                foreach (var group in groups)
                {
                    var member = checks[group.Members[0]];
                    group.Slot = connection!.HashSlot(RedisKeys.For(_prefix, member.Key, member.Limit.Algorithm));
                }

                // A later stage joins the round's call only on the round's slot.
                if (remoteGroups > 0 && (manySlots || !AllOnSlot(groups, roundSlot)))
                {
                    break;
                }
            }

            var rejects = false;
            foreach (var group in groups)
            {
                rejects |= AnswerLocally(batch, group, checks, outcomes);
                if (group.RemoteCount > 0)
                {
                    remoteGroups++;
                    manySlots |= roundSlot is { } slot && slot != group.Slot;
                    roundSlot ??= group.Slot;
                }
            }

            round.Groups.AddRange(groups);
            round.Last = stage;
            if (rejects)
            {
                break;
            }
        }

        if (remoteGroups == 0)
        {
            return round;
        }

        // One call per hash slot (a single node has none), the groups in stage order.
        var calls = new List<Call>(1);
        foreach (var group in round.Groups)
        {
            if (group.RemoteCount == 0)
            {
                continue;
            }

            // Loops, not List.Find with a lambda: a capturing lambda is an allocation per group on every decision.
            Call? call = null;
            foreach (var candidate in calls)
            {
                if (candidate.Slot == group.Slot)
                {
                    call = candidate;
                    break;
                }
            }

            if (call is null)
            {
                call = new Call(group.Slot);
                calls.Add(call);
            }

            call.Groups.Add(group);
        }

        if (Remaining(batch.Deadline) == TimeSpan.Zero)
        {
            // No time is left (an earlier round, or the wait for a leased slice, took it): a call sent now would be given
            // up on at once while its script still ran and charged. The calls' groups are answered by the failure mode,
            // as timed out; no breaker is told, since no node failed.
            foreach (var call in calls)
            {
                foreach (var group in call.Groups)
                {
                    group.Failed = true;
                }
            }

            Report("timeout", NoTimeLeft(), null);
            return round;
        }

        var now = SteadyNow();
        foreach (var call in calls)
        {
            // Each call is judged by the breaker of the node it goes to: a dead node fails only its own slots' calls.
            call.Breaker = standalone ? _breakers.Own : _breakers.For(connection!, call.Slot, now);
            if (!call.Breaker.TryEnter(now))
            {
                foreach (var group in call.Groups)
                {
                    _metrics.CountFailure("circuit_open");
                    group.Failed = true;
                }

                continue;
            }

            try
            {
                Send(call, checks, batch, null);
            }
            catch (Exception ex)
            {
                // Nothing was sent: the call's groups are answered by the failure mode.
                foreach (var group in call.Groups)
                {
                    group.Failed = true;
                }

                Fail("error", ex, call.Breaker);
                continue;
            }

            (round.Calls ??= []).Add(call);
        }

        return round;
    }

    private static bool AllOnSlot(List<Group> groups, int? slot)
    {
        foreach (var group in groups)
        {
            if (group.Slot != slot)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The identity groups of one stage, in the order of their first checks.</summary>
    private static List<Group> Groups(Batch batch, int stage)
    {
        var checks = batch.Checks.Span;
        var ends = batch.StageEnds.Span;
        var start = stage == 0 ? 0 : ends[stage - 1];
        var end = ends[stage];
        Span<bool> grouped = end - start <= 64 ? stackalloc bool[end - start] : new bool[end - start];
        grouped.Clear();
        var groups = new List<Group>(1);
        for (var i = start; i < end; i++)
        {
            if (grouped[i - start])
            {
                continue;
            }

            var identity = checks[i].Key.Identity;
            var members = new List<int>(1);
            for (var j = i; j < end; j++)
            {
                if (!grouped[j - start] && checks[j].Key.Identity == identity)
                {
                    grouped[j - start] = true;
                    members.Add(j);
                }
            }

            groups.Add(new Group(members, stage));
        }

        return groups;
    }

    /// <summary>
    /// Answers the failed groups of a round by the failure mode, stage by stage, and finds the first stage that rejects;
    /// the groups after it are given back. <see langword="true"/> when the batch is decided, with
    /// <paramref name="next"/> the number of stages decided; otherwise <paramref name="next"/> is the stage the next
    /// round starts from.
    /// </summary>
    private bool Settle(Batch batch, Round round, out int next)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var ends = batch.StageEnds.Span;
        var groups = round.Groups;
        var index = 0;
        for (var stage = round.First; stage <= round.Last; stage++)
        {
            for (; index < groups.Count && groups[index].Stage == stage; index++)
            {
                var group = groups[index];
                if (group.Failed || (group.RemoteCount > 0 && !group.Evaluated))
                {
                    Fallback(group, checks, outcomes, batch.Sources);
                }
            }

            if (Rejects(ends, checks, outcomes, stage))
            {
                // The stages after it are not decided: give back what their groups took, and write nothing for them.
                for (; index < groups.Count; index++)
                {
                    Abandon(groups[index], checks, batch.Sources);
                    foreach (var k in groups[index].Members)
                    {
                        outcomes[k] = default;
                    }
                }

                next = stage + 1;
                return true;
            }
        }

        next = round.Last + 1;
        if (next == ends.Length)
        {
            return true;
        }

        // Rounds follow: the leases this one granted are kept in view, to be released should the decision be given up on.
        round.Earlier = batch.Settled;
        batch.Settled = round;
        return false;
    }

    private static bool Rejects(ReadOnlySpan<int> ends, ReadOnlySpan<RateLimitCheck> checks, ReadOnlySpan<StoreOutcome> outcomes, int stage)
    {
        var start = stage == 0 ? 0 : ends[stage - 1];
        return StagedDecisions.Rejects(checks[start..ends[stage]], outcomes[start..ends[stage]]);
    }

    private long Deadline() => TimeProvider.System.GetTimestamp() + _timeoutTicks;

    /// <summary>What a call not sent for want of time is reported with.</summary>
    private TimeoutException NoTimeLeft() => new($"No time was left of the decision's {_options.Timeout} to send the Redis call.");

    private static TimeSpan Remaining(long deadline)
    {
        var left = TimeProvider.System.GetElapsedTime(TimeProvider.System.GetTimestamp(), deadline);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }
}
