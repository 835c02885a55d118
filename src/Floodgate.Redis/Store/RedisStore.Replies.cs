using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// A script's answer turned into outcomes, described by the engine's own math.
public sealed partial class RedisStore
{
    /// <summary>Turns a script's answer into outcomes; <see langword="false"/> when the answer has the wrong shape.</summary>
    private bool Apply(Call call, RedisResult result, Batch batch)
    {
        if (!DecideProtocol.TryReadDecided(result, call.Groups.Count, out var now, out var evaluated))
        {
            return false;
        }

        var checks = 0;
        for (var g = 0; g < evaluated; g++)
        {
            checks += call.Groups[g].RemoteCount;
        }

        if (result.Length != DecideProtocol.ReplyLength(checks))
        {
            return false;
        }

        var first = 0;
        for (var g = 0; g < evaluated; g++)
        {
            var group = call.Groups[g];
            Apply(group, result, first, now, batch);
            group.Evaluated = true;
            first += group.RemoteCount;
        }

        return true;
    }

    /// <summary>
    /// Turns one group's part of a script's answer into outcomes: its checks are the call's from number
    /// <paramref name="first"/> on.
    /// </summary>
    private void Apply(Group group, RedisResult result, int first, long now, Batch batch)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var sources = batch.Sources;
        var remote = group.Remote!;
        var denied = false;
        for (var n = 0; n < remote.Length; n++)
        {
            denied |= DecideProtocol.IsDenied(result, first + n) && !checks[remote[n]].IsShadow;
        }

        for (var n = 0; n < remote.Length; n++)
        {
            var k = remote[n];
            ref readonly var check = ref checks[k];
            var (allowed, state, granted) = DecideProtocol.ReadCheck(result, first + n);
            var committed = IsCharged(check) || (allowed && !denied && !check.IsProbe);
            LimitOutcome outcome;
            var leaseId = 0L;
            if (check.Limit.Algorithm == LimitAlgorithm.Concurrency)
            {
                outcome = LimitMath.Concurrency(check.Limit, state.A, state.B, state.C, now, check.Cost);
                if (committed && check.Cost > 0)
                {
                    leaseId = group.LeaseIds![n];
                    group.Hold(k, leaseId);
                }
            }
            else if (check.Limit.Algorithm == LimitAlgorithm.SlidingLog)
            {
                // The script answers what the log holds: the entries in the window, the blocking entry, the newest.
                outcome = LimitMath.SlidingLog(check.Limit, state.A, state.B, state.C, now, check.Cost);
            }
            else
            {
                var sliced = committed && granted > check.Cost;
                outcome = LimitMath.Decide(check.Limit, state, now, sliced ? granted : check.Cost, out _);
                if (sources[k] == Source.Acquire)
                {
                    var left = _slices.Acquired(check, committed ? granted : 0, batch.LocalNow);
                    if (sliced)
                    {
                        outcome = outcome with { Remaining = outcome.Remaining + left };
                    }
                }
            }

            if (outcome.IsAllowed != allowed)
            {
                Interlocked.Increment(ref _mismatchCount);
                LogMismatch(_logger, check.Limit.ToString(), allowed, outcome.IsAllowed);
                outcome = outcome with { IsAllowed = allowed };
            }

            if (_cache is not null && IsCacheable(check))
            {
                _cache.Observe(check, state, now, batch.LocalNow, outcome, committed);
            }

            outcomes[k] = new StoreOutcome(outcome, committed, leaseId);
        }

        if (denied)
        {
            foreach (var k in group.Members)
            {
                if (sources[k] == Source.Leased)
                {
                    _slices.Refund(checks[k]);
                    outcomes[k] = outcomes[k] with { Committed = false };
                }
            }
        }
    }
}
