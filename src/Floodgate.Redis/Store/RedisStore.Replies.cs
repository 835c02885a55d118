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
        if (result.Resp2Type != ResultType.Array || result.Length < 3)
        {
            return false;
        }

        for (var i = 0; i < result.Length; i++)
        {
            if (result[i].Resp2Type != ResultType.Integer)
            {
                return false;
            }
        }

        var evaluated = (long)result[2];
        if ((long)result[0] != 1 || evaluated < 0 || evaluated > call.Groups.Count)
        {
            return false;
        }

        var length = 3;
        for (var g = 0; g < evaluated; g++)
        {
            length += 5 * call.Groups[g].RemoteCount;
        }

        if (result.Length != length)
        {
            return false;
        }

        var now = (long)result[1];
        var at = 3;
        for (var g = 0; g < evaluated; g++)
        {
            var group = call.Groups[g];
            Apply(group, result, at, now, batch);
            group.Evaluated = true;
            at += 5 * group.RemoteCount;
        }

        return true;
    }

    /// <summary>Turns one group's part of a script's answer, from <paramref name="at"/>, into outcomes.</summary>
    private void Apply(Group group, RedisResult result, int at, long now, Batch batch)
    {
        var checks = batch.Checks.Span;
        var outcomes = batch.Outcomes.Span;
        var plan = batch.Plan;
        var remote = group.Remote!;
        var denied = false;
        for (var n = 0; n < remote.Length; n++)
        {
            denied |= (long)result[at + (5 * n)] == 0 && !checks[remote[n]].IsShadow;
        }

        for (var n = 0; n < remote.Length; n++)
        {
            var k = remote[n];
            ref readonly var check = ref checks[k];
            var i = at + (5 * n);
            var allowed = (long)result[i] == 1;
            var state = new LimitState((long)result[i + 1], (long)result[i + 2], (long)result[i + 3]);
            var granted = (long)result[i + 4];
            var committed = allowed && !denied && !check.IsProbe;
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
            else
            {
                var sliced = committed && granted > check.Cost;
                outcome = LimitMath.Decide(check.Limit, state, now, sliced ? granted : check.Cost, out _);
                if (plan[k] == Kind.Acquire)
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
                if (plan[k] == Kind.Leased)
                {
                    _slices.Refund(checks[k]);
                    outcomes[k] = outcomes[k] with { Committed = false };
                }
            }
        }
    }
}
