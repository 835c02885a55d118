using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Costs settled once a request's real cost is known: settle.lua, one call on the key, sent as a renewal is.
public sealed partial class RedisStore
{
    /// <summary>The Lua script that settles a cost: LimitMath.Settle, on the key's state, at the server's now.</summary>
    internal static readonly string SettleScript = LoadScript("settle.lua");

    /// <inheritdoc/>
    /// <remarks>
    /// <para>
    /// One call of <c>settle.lua</c> on the check's key, timed by the server's clock as its decisions are: one round trip,
    /// pipelined with whatever else the connection carries. A calendar quota whose periods, computed by this process's
    /// clock, miss the server's now is sent once more with the periods around the server's now.
    /// </para>
    /// <para>
    /// As a renewal does, a settlement waits at most <see cref="RedisStoreOptions.Timeout"/>, is not sent while the
    /// breaker of the key's node is open, and counts a failure against the breaker on a single node; it then answers
    /// <see cref="CostSettlement.Failed"/> (the reservation stands) and never throws but for the caller's own
    /// cancellation. A refund forgets the key's cached denial, so the budget it gives back is usable at once.
    /// </para>
    /// </remarks>
    public ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken = default) =>
        SettleAsync(check, delta, null, cancellationToken);

    /// <summary>Settles at an explicit time (tests), or at the server's now when <paramref name="now"/> is null.</summary>
    internal async ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, long? now, CancellationToken cancellationToken = default)
    {
        var limit = check.Limit;
        if (limit.Algorithm == LimitAlgorithm.Concurrency)
        {
            throw new ArgumentException("A concurrency check is not settled: its cost is the permits its lease holds.", nameof(check));
        }

        if (limit.Algorithm == LimitAlgorithm.SlidingLog)
        {
            throw new ArgumentException("A sliding_log check is not settled: its log holds the units admitted, each at its time.", nameof(check));
        }

        if (delta == 0)
        {
            return CostSettlement.Settled;
        }

        var key = RedisKeys.For(_prefix, check.Key, limit.Algorithm);
        var connection = Current;
        if (connection is not null)
        {
            var slot = connection.HashSlot(key);
            var breaker = slot == NoSlot ? _breakers.Own : _breakers.For(connection, slot, SteadyNow());
            if (!breaker.IsClosed)
            {
                _metrics.CountFailure("circuit_open");
                return CostSettlement.Failed;
            }
        }

        var units = Math.Clamp(delta, -LimitMath.MaxSettleUnits(limit), LimitMath.MaxSettleUnits(limit));
        try
        {
            var database = (connection ?? throw NoMaster()).GetDatabase();
            var reply = await SendSettleAsync(database, key, limit, units, now, LocalNow(), cancellationToken).ConfigureAwait(false);
            if ((long)reply[0] < 0)
            {
                // The server's now lies outside this process's two calendar periods: once more, around the server's now.
                var serverNow = (long)reply[1];
                reply = await SendSettleAsync(database, key, limit, units, now, serverNow, cancellationToken).ConfigureAwait(false);
                if ((long)reply[0] < 0)
                {
                    Fail("calendar_skew", null);
                    return CostSettlement.Failed;
                }
            }

            if (units < 0)
            {
                _cache?.Forget(check.Key);
            }

            return CostSettlement.Settled;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Fail(ex is TimeoutException ? "timeout" : "settle", ex);
            return CostSettlement.Failed;
        }
    }

    private async Task<RedisResult[]> SendSettleAsync(IDatabase database, RedisKey key, Limit limit, long units, long? now, long periodsAround, CancellationToken cancellationToken)
    {
        RedisValue time = now is { } explicitNow ? explicitNow : RedisValue.EmptyString;
        RedisValue[] args = limit.Algorithm switch
        {
            LimitAlgorithm.Gcra or LimitAlgorithm.LeakyBucket => [time, 0, units, limit.IntervalMicroseconds, Limit.MaxSpanMicroseconds],
            LimitAlgorithm.SlidingWindow => [time, 1, units, limit.PeriodMicroseconds],
            LimitAlgorithm.FixedWindow => [time, 2, units, limit.PeriodMicroseconds],
            _ => QuotaArguments(time, limit, units, now ?? periodsAround),
        };
        var settle = database.ScriptEvaluateAsync(SettleScript, [key], args, CommandFlags.DemandMaster);
        var reply = await settle.WaitAsync(_options.Timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        return (RedisResult[])reply!;
    }

    private static RedisValue[] QuotaArguments(RedisValue time, Limit limit, long units, long around)
    {
        if (limit.Calendar is null)
        {
            return [time, 3, units, limit.PeriodMicroseconds, 0, 0, 0, 0];
        }

        var (start, end) = limit.CalendarPeriod(around);
        var (_, nextEnd) = limit.CalendarPeriod(end);
        return [time, 3, units, limit.PeriodMicroseconds, 1, start, end, nextEnd];
    }
}
