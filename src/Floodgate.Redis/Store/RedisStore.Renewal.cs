using Floodgate.Limits;
using Floodgate.Stores;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Concurrency leases renewed while their request runs: renew.lua, sent as a release is (see RedisStore.Leases.cs).
public sealed partial class RedisStore
{
    /// <summary>The Lua script that renews a concurrency lease still held, to one lease timeout from the server's now.</summary>
    internal static readonly string RenewScript = LoadScript("renew.lua");

    /// <inheritdoc/>
    /// <remarks>
    /// <para>
    /// One call of <c>renew.lua</c> on the lease's key, timed by the server's clock as the lease was: it re-scores the
    /// lease member with its new expiry only while the member is there and unexpired, and extends the key's TTL with it.
    /// The engine renews every due lease at once without waiting for each, so the calls go pipelined on the connection:
    /// one renewal costs the server one short script, and no request waits for it.
    /// </para>
    /// <para>
    /// As a release does, a renewal waits at most <see cref="RedisStoreOptions.Timeout"/>, is not sent while the breaker
    /// of the key's node is open (<c>failures{reason=circuit_open}</c>), and counts a failure against the breaker on a
    /// single node; either way it answers <see cref="LeaseRenewal.Failed"/> and never throws but for the caller's own
    /// cancellation. A lease granted by the local fallback is renewed there.
    /// </para>
    /// </remarks>
    public async ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default)
    {
        if (leaseId == 0 || check.Limit.Algorithm != LimitAlgorithm.Concurrency)
        {
            return LeaseRenewal.NotHeld;
        }

        if ((leaseId & RedisLeaseBit) == 0)
        {
            return await _local.RenewAsync(check, leaseId, cancellationToken).ConfigureAwait(false);
        }

        var key = RedisKeys.For(_prefix, check.Key, LimitAlgorithm.Concurrency);
        var connection = Current;
        if (connection is not null)
        {
            var slot = connection.HashSlot(key);
            var breaker = slot == NoSlot ? _breakers.Own : _breakers.For(connection, slot, SteadyNow());
            if (!breaker.IsClosed)
            {
                // Asked again at the next renewal; the lease has two thirds of its timeout to run at most.
                _metrics.CountFailure("circuit_open");
                return LeaseRenewal.Failed;
            }
        }

        try
        {
            var renew = (connection ?? throw NoMaster()).GetDatabase().ScriptEvaluateAsync(
                RenewScript, [key], [DecideProtocol.LeaseMember(leaseId, check.Cost), check.Limit.LeaseTimeoutMicroseconds], CommandFlags.DemandMaster);
            var held = await renew.WaitAsync(_options.Timeout, TimeProvider.System, cancellationToken).ConfigureAwait(false);
            return (long)held == 1 ? LeaseRenewal.Renewed : LeaseRenewal.NotHeld;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Fail(ex is TimeoutException ? "timeout" : "renew", ex);
            return LeaseRenewal.Failed;
        }
    }
}
