using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Concurrency leases in Redis: their ids, release.lua, and the release of those a decision gave up on (in Redis or the
// local store), so that none is held until its timeout.
public sealed partial class RedisStore
{
    /// <summary>Set in the ids of the leases granted in Redis, clear in those of the local store's.</summary>
    private const long RedisLeaseBit = 1L << 62;

    /// <summary>A random id for a lease the script may grant in Redis.</summary>
    private static long NewRedisLeaseId() => RedisLeaseBit | (Random.Shared.NextInt64() & (RedisLeaseBit - 1));

    /// <summary>
    /// Sends release.lua for <paramref name="leaseId"/> of <paramref name="check"/>, whose concurrency key is
    /// <paramref name="key"/>; for a limit that queues, the script publishes the release to every process.
    /// </summary>
    private Task<RedisResult> Release(IConnectionMultiplexer connection, RedisKey key, in RateLimitCheck check, long leaseId, CommandFlags flags) =>
        connection.GetDatabase().ScriptEvaluateAsync(
            ReleaseScript,
            [key],
            check.Limit.QueueSize > 0
                ? [DecideProtocol.LeaseMember(leaseId, check.Cost), check.Cost, ReleaseChannelName, ReleaseNotice(check.Key)]
                : [DecideProtocol.LeaseMember(leaseId, check.Cost), check.Cost],
            flags);

    /// <summary>
    /// Frees the concurrency leases a call may still take after it was given up (its caller went away, or it timed out):
    /// the request will never release them. Each release (release.lua) is queued behind the decision on the same
    /// connection, so it runs after it; releasing a lease the decision never granted does nothing.
    /// </summary>
    private void ReleaseAbandoned(Call call, ReadOnlySpan<RateLimitCheck> checks)
    {
        List<(RateLimitCheck Check, long LeaseId)>? leases = null;
        foreach (var group in call.Groups)
        {
            if (group.LeaseIds is not { } ids)
            {
                continue;
            }

            var remote = group.Remote!;
            for (var n = 0; n < remote.Length; n++)
            {
                ref readonly var check = ref checks[remote[n]];
                if (check.Limit.Algorithm == LimitAlgorithm.Concurrency && ids[n] != 0)
                {
                    (leases ??= []).Add((check, ids[n]));
                }
            }
        }

        if (leases is null || call.Task is not { } task)
        {
            return;
        }

        if (!CallCoalescer.WasQueued(task))
        {
            // Sent (alone): the release follows the call on the connection, so Redis runs it after the script.
            QueueReleases(leases);
            return;
        }

        // A call that waited for a run may not be written yet: released once it is answered, and not at all if it was
        // never sent (its decision's time ran out, or it was cancelled, first: then it took nothing).
        _ = task.ContinueWith(
            (done, state) =>
            {
                if (!CallCoalescer.WasNeverSent(done))
                {
                    QueueReleases((List<(RateLimitCheck Check, long LeaseId)>)state!);
                }
            },
            leases,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void QueueReleases(List<(RateLimitCheck Check, long LeaseId)> leases)
    {
        foreach (var (check, leaseId) in leases)
        {
            QueueRelease(check, leaseId);
        }
    }

    /// <summary>
    /// Frees the leases granted (in Redis, or by the local fallback) in the rounds settled before the caller gave up on
    /// the decision: it throws, so the caller sees no outcome and will never release them. Only the leases this batch
    /// recorded as granted (<see cref="Group.Leases"/>), never ids read back from the outcomes, which the caller may have
    /// rented with another request's leases still in them. The round given up on granted nothing (the leases its scripts
    /// may still take are <see cref="ReleaseAbandoned"/>'s). When a later round fails or times out instead, the outcomes
    /// are returned and the caller releases these leases itself: nothing is released here then.
    /// </summary>
    private void ReleaseSettled(Batch batch)
    {
        var checks = batch.Checks.Span;
        for (var round = batch.Settled; round is not null; round = round.Earlier)
        {
            foreach (var group in round.Groups)
            {
                if (group.Leases is not { } leases)
                {
                    continue;
                }

                for (var m = 0; m < leases.Length; m++)
                {
                    if (leases[m] == 0)
                    {
                        continue;
                    }

                    ref readonly var check = ref checks[group.Members[m]];
                    if ((leases[m] & RedisLeaseBit) != 0)
                    {
                        QueueRelease(check, leases[m]);
                    }
                    else
                    {
                        // The in-memory store releases synchronously.
                        var released = _local.ReleaseAsync(check, leases[m], CancellationToken.None);
                        if (!released.IsCompletedSuccessfully)
                        {
                            Observe(released.AsTask());
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Queues the release (release.lua) of a Redis lease without waiting for it, behind any call already sent on the same
    /// connection; releasing a lease that was never granted, or twice, does nothing.
    /// </summary>
    private void QueueRelease(in RateLimitCheck check, long leaseId)
    {
        try
        {
            var key = RedisKeys.For(_prefix, check.Key, LimitAlgorithm.Concurrency);
            // Under Sentinel the master may have changed since the call: then the script ran on a node whose writes the
            // failover discards, and this removal finds nothing.
            if (Current is { } connection)
            {
                _ = Release(connection, key, check, leaseId, CommandFlags.FireAndForget | CommandFlags.DemandMaster);
            }
        }
        catch (Exception ex)
        {
            // Never thrown into a decision (a command map may even forbid EVAL): the lease frees itself at its timeout.
            _metrics.CountFailure("release");
            LogAbandonedReleaseFailed(_logger, ex);
        }
    }
}
