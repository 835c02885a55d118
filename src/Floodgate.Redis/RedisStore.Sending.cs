using StackExchange.Redis;

namespace Floodgate.Redis;

/// <content>
/// Sending the script. On a single node the calls of concurrent decisions are coalesced: while one script call is in
/// flight, the calls that arrive queue, and go together in the next, as one script run. Each decision still waits for
/// its own reply with its own deadline, and the script keeps each decision's stages and all-or-nothing groups apart.
/// Under load this turns many small round trips, each with its fixed cost in Redis, in the client and in the kernel,
/// into a few larger ones; an idle store sends each call at once, alone.
/// </content>
public sealed partial class RedisStore
{
    /// <summary>At most this many calls go in one script run, so one run stays short for the server.</summary>
    private const int MaxCallsPerRun = 64;

    private readonly Lock _queueGate = new();
    private List<Call>? _queued;
    private bool _sending;

    /// <summary>Sends <paramref name="call"/>, alone or coalesced with others; the task ends with its reply.</summary>
    private Task<long[]> Submit(Call call, bool coalesce, long? serverNow, long deadline)
    {
        // Replies complete their callers' continuations on the thread pool: a run's reply must not run one caller's
        // request inline while the others wait.
        call.Reply = new TaskCompletionSource<long[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        call.Deadline = deadline;
        if (!coalesce)
        {
            _ = RunAsync([call], serverNow, pumping: false);
            return call.Reply.Task;
        }

        lock (_queueGate)
        {
            if (_sending)
            {
                (_queued ??= []).Add(call);
                return call.Reply.Task;
            }

            _sending = true;
        }

        _ = RunAsync([call], null, pumping: true);
        return call.Reply.Task;
    }

    /// <summary>
    /// Runs the script for <paramref name="calls"/>; when <paramref name="pumping"/>, then sends the calls that queued
    /// meanwhile before answering these, so the next run is on its way while these callers go on.
    /// </summary>
    private async Task RunAsync(List<Call> calls, long? serverNow, bool pumping)
    {
        long[][]? replies = null;
        Exception? error = null;
        try
        {
            replies = await ExecuteAsync(calls, serverNow).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            error = ex;
        }

        if (pumping)
        {
            List<Call>? next;
            lock (_queueGate)
            {
                next = TakeQueued();
                if (next is null)
                {
                    _sending = false;
                }
            }

            if (next is not null)
            {
                _ = RunAsync(next, null, pumping: true);
            }
        }

        for (var i = 0; i < calls.Count; i++)
        {
            if (replies is not null)
            {
                calls[i].Reply!.TrySetResult(replies[i]);
            }
            else
            {
                calls[i].Reply!.TrySetException(error!);
            }
        }
    }

    /// <summary>The queued calls whose callers still wait, at most <see cref="MaxCallsPerRun"/>; <see langword="null"/> when none. Under the lock.</summary>
    private List<Call>? TakeQueued()
    {
        while (_queued is { Count: > 0 })
        {
            List<Call> taken;
            if (_queued.Count <= MaxCallsPerRun)
            {
                taken = _queued;
                _queued = null;
            }
            else
            {
                taken = _queued.GetRange(0, MaxCallsPerRun);
                _queued.RemoveRange(0, MaxCallsPerRun);
            }

            // A caller past its deadline has been answered by the failure mode already: its call must not be charged.
            var now = TimeProvider.System.GetTimestamp();
            var late = taken.RemoveAll(c =>
            {
                if (c.Deadline > now)
                {
                    return false;
                }

                c.Reply!.TrySetException(new TimeoutException($"Redis did not answer within {_options.Timeout}."));
                return true;
            });
            if (taken.Count > 0)
            {
                return taken;
            }
        }

        return null;
    }

    /// <summary>One script run for <paramref name="calls"/>: sends it (again as script text after NOSCRIPT) and splits the reply per call.</summary>
    private async Task<long[][]> ExecuteAsync(List<Call> calls, long? serverNow)
    {
        var keyCount = 0;
        var valueCount = 2;
        foreach (var call in calls)
        {
            keyCount += call.Keys!.Length;
            valueCount += call.Values!.Length;
        }

        RedisKey[] keys;
        RedisValue[] values;
        var groups = 0;
        if (calls.Count == 1)
        {
            keys = calls[0].Keys!;
            values = new RedisValue[valueCount];
            calls[0].Values!.CopyTo(values, 2);
            groups = calls[0].Groups.Count;
        }
        else
        {
            keys = new RedisKey[keyCount];
            values = new RedisValue[valueCount];
            int k = 0, v = 2;
            for (var c = 0; c < calls.Count; c++)
            {
                var call = calls[c];
                call.Keys!.CopyTo(keys, k);
                call.Values!.CopyTo(values, v);

                // Each group header starts with its call's number: the script keeps each call's stages apart.
                var at = v;
                foreach (var group in call.Groups)
                {
                    values[at] = c;
                    at += GroupHeader + (group.RemoteCount * Stride);
                }

                k += call.Keys.Length;
                v += call.Values.Length;
                groups += call.Groups.Count;
            }
        }

        values[0] = serverNow is { } now ? now : RedisValue.EmptyString;
        values[1] = groups;
        RedisResult result;
        try
        {
            CountRoundTrip();
            result = await _connection.GetDatabase().ScriptEvaluateAsync(ScriptHash, keys, values).ConfigureAwait(false);
        }
        catch (RedisServerException noScript) when (noScript.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            // The server lost its scripts (SCRIPT FLUSH, a restart, a failover, a new cluster owner): send the script
            // itself (StackExchange.Redis sends EVAL and caches it).
            CountRoundTrip();
            result = await _connection.GetDatabase().ScriptEvaluateAsync(Script, keys, values).ConfigureAwait(false);
        }

        return Split(calls, result);
    }

    private void CountRoundTrip()
    {
        Interlocked.Increment(ref _roundTripCount);
        _roundTrips.Add(1);
    }

    /// <summary>
    /// Splits a run's reply, <c>{1, now, then per group: 1 and 5 values per check, or 0 when not evaluated}</c> or
    /// <c>{-1, now}</c>, into one reply per call in the shape of a call sent alone.
    /// </summary>
    /// <exception cref="RedisException">The reply has the wrong shape.</exception>
    private static long[][] Split(List<Call> calls, RedisResult result)
    {
        if (result.Resp2Type != ResultType.Array || result.Length < 2)
        {
            throw new RedisException("The decision script answered in an unexpected shape.");
        }

        var flat = new long[result.Length];
        for (var i = 0; i < flat.Length; i++)
        {
            var item = result[i];
            if (item.Resp2Type != ResultType.Integer)
            {
                throw new RedisException("The decision script answered in an unexpected shape.");
            }

            flat[i] = (long)item;
        }

        var replies = new long[calls.Count][];
        if (flat[0] == -1 && flat.Length == 2)
        {
            // A calendar skew: nothing was written; every call resends with the server's periods.
            for (var c = 0; c < calls.Count; c++)
            {
                replies[c] = flat;
            }

            return replies;
        }

        if (flat[0] != 1)
        {
            throw new RedisException("The decision script answered in an unexpected shape.");
        }

        var at = 2;
        for (var c = 0; c < calls.Count; c++)
        {
            var call = calls[c];
            var size = 3;
            var evaluated = 0;
            var start = at;
            foreach (var group in call.Groups)
            {
                if (at >= flat.Length)
                {
                    throw new RedisException("The decision script answered in an unexpected shape.");
                }

                if (flat[at++] == 1)
                {
                    // Evaluated groups of one call come first: the script stops a call at its first rejecting stage.
                    if (evaluated != call.Groups.IndexOf(group))
                    {
                        throw new RedisException("The decision script answered in an unexpected shape.");
                    }

                    evaluated++;
                    size += 5 * group.RemoteCount;
                    at += 5 * group.RemoteCount;
                }
            }

            if (at > flat.Length)
            {
                throw new RedisException("The decision script answered in an unexpected shape.");
            }

            var reply = new long[size];
            reply[0] = 1;
            reply[1] = flat[1];
            reply[2] = evaluated;
            var to = 3;
            var from = start;
            foreach (var group in call.Groups)
            {
                if (flat[from++] == 1)
                {
                    Array.Copy(flat, from, reply, to, 5 * group.RemoteCount);
                    from += 5 * group.RemoteCount;
                    to += 5 * group.RemoteCount;
                }
            }

            replies[c] = reply;
        }

        if (at != flat.Length)
        {
            throw new RedisException("The decision script answered in an unexpected shape.");
        }

        return replies;
    }
}
