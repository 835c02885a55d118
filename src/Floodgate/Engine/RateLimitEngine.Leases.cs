using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Engine;

// Concurrency leases: released when their request ends, renewed while it runs.
public sealed partial class RateLimitEngine
{
    /// <summary>Releases the concurrency leases <paramref name="result"/> holds; call it when the request ends.</summary>
    /// <remarks>Renewal of the leases (<see cref="RenewLeases"/>) stops first.</remarks>
    public ValueTask ReleaseAsync(RateLimitResult result, CancellationToken cancellationToken = default) =>
        Release(result.Leases, cancellationToken);

    /// <summary>
    /// Keeps the concurrency leases <paramref name="result"/> holds for as long as its request runs: until
    /// <see cref="ReleaseAsync"/>, each is renewed (<see cref="IRateLimitStore.RenewAsync"/>) by one lease timeout at a
    /// time, about every third of its timeout, so a WebSocket, an event stream or a long transfer keeps its permit past
    /// <see cref="Limit.LeaseTimeout"/>. The leases of a process that dies still end one timeout after their last renewal.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Call it when the request is admitted, with the result it will release (after <see cref="RateLimitResult.Combine"/>),
    /// and release it when the request ends, whatever happens: the leases of a result never released are renewed for as
    /// long as the process runs. A result without leases costs nothing; one with leases is linked into the engine's
    /// renewal list, allocating nothing. One timer per engine renews every lease due, in batches.
    /// </para>
    /// <para>
    /// A renewal that finds its lease gone (it expired while this process stalled past its timeout, or the store lost it)
    /// does not take it again: the lease is counted (<c>floodgate.lease.renewals</c>, <c>result=lost</c>), logged, and no
    /// longer renewed, and the request goes on. A store that cannot be reached is asked again at the next renewal; a store
    /// that cannot renew (<see cref="LeaseRenewal.NotSupported"/>) leaves its leases to their timeout.
    /// </para>
    /// </remarks>
    public void RenewLeases(RateLimitResult result)
    {
        if (result.Leases is { } leases)
        {
            _renewer.Add(leases);
        }
    }

    /// <summary>How many requests' leases are being renewed now (see <see cref="RenewLeases"/>).</summary>
    public int RenewingRequests => _renewer.Listed;

    private async ValueTask Release(LeaseBag? leases, CancellationToken cancellationToken)
    {
        if (leases is null)
        {
            return;
        }

        // Unlisted before the store releases them, so no renewal finds them released and counts them lost.
        _renewer.Remove(leases);
        for (var i = 0; i < leases.Count; i++)
        {
            var (check, leaseId) = leases[i];
            await _store.ReleaseAsync(check, leaseId, cancellationToken).ConfigureAwait(false);

            // A permit is free: one request waiting for it here tries again (other processes hear of it from the store).
            if (check.Limit.QueueSize > 0)
            {
                _queues.Wake(check.Key);
            }
        }
    }
}
