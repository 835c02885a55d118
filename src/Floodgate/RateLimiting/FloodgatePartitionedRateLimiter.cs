using System.Threading.RateLimiting;
using Floodgate.Keys;
using Floodgate.Stores;

namespace Floodgate.RateLimiting;

/// <summary>
/// A <see cref="PartitionedRateLimiter{TResource}"/> backed by a Floodgate store: each resource is counted under the key
/// and limit its partitioner names, so <c>AddRateLimiter</c> users can plug Floodgate in as their global limiter.
/// </summary>
/// <remarks>
/// Unlike <see cref="PartitionedRateLimiter.Create{TResource, TPartitionKey}"/>, there is no limiter object per partition:
/// keys are hashed into the store, which bounds its memory and forgets idle keys. The behaviour of leases, metadata and
/// <see cref="PartitionedRateLimiter{TResource}.AttemptAcquire(TResource, int)"/> is that of <see cref="FloodgateRateLimiter"/>.
/// </remarks>
/// <typeparam name="TResource">The resource, such as <c>HttpContext</c>.</typeparam>
public sealed class FloodgatePartitionedRateLimiter<TResource> : PartitionedRateLimiter<TResource>
{
    private readonly FloodgateRateLimiterCore _core;
    private readonly Func<TResource, FloodgatePartition> _partitioner;
    private readonly long[] _seeds;
    private int _disposed;

    /// <summary>Creates a limiter.</summary>
    /// <param name="store">Where the state lives.</param>
    /// <param name="partitioner">Names the key and limit of each resource.</param>
    /// <param name="name">Scopes this limiter's keys in a shared store. Default: <c>partitioned</c>.</param>
    public FloodgatePartitionedRateLimiter(IRateLimitStore store, Func<TResource, FloodgatePartition> partitioner, string name = "partitioned")
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(partitioner);
        ArgumentException.ThrowIfNullOrEmpty(name);
        _core = new FloodgateRateLimiterCore(store);
        _partitioner = partitioner;
        // One seed per algorithm, computed once: a decision hashes only its partition key.
        _seeds = [.. Enum.GetValues<Limits.LimitAlgorithm>().Select(a => KeyHasher.Seed("partitioned-limiter:" + name, a))];
    }

    /// <inheritdoc/>
    public override RateLimiterStatistics? GetStatistics(TResource resource)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return TryCheck(resource, 0, out var check) ? _core.Statistics(check) : null;
    }

    /// <inheritdoc/>
    protected override RateLimitLease AttemptAcquireCore(TResource resource, int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return TryCheck(resource, permitCount, out var check) ? _core.AttemptAcquire(check) : FloodgateLease.Acquired;
    }

    /// <inheritdoc/>
    protected override ValueTask<RateLimitLease> AcquireAsyncCore(TResource resource, int permitCount, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (!TryCheck(resource, permitCount, out var check))
        {
            return new ValueTask<RateLimitLease>(FloodgateLease.Acquired);
        }

        var lease = _core.AttemptAcquire(check);
        return lease == FloodgateLease.Pending ? _core.AcquireAsync(check, cancellationToken) : new ValueTask<RateLimitLease>(lease);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        Interlocked.Exchange(ref _disposed, 1);
        base.Dispose(disposing);
    }

    private bool TryCheck(TResource resource, int permitCount, out RateLimitCheck check)
    {
        var partition = _partitioner(resource);
        if (partition.Key is null || partition.Limit is null)
        {
            check = default;
            return false;
        }

        ArgumentOutOfRangeException.ThrowIfNegative(partition.Cost, nameof(resource));
        if (partition.Limit.MaxDelay > TimeSpan.Zero)
        {
            throw new ArgumentException("A leaky_bucket queue (MaxDelay) delays what it admits, and these limiters never wait: use a leaky bucket meter, or the engine with a front door that waits.", nameof(resource));
        }

        check = FloodgateRateLimiterCore.ForPermits(new RateLimitCheck(partition.Limit, KeyFor(partition), 0, false), partition.Cost, permitCount);
        return true;
    }

    private StoreKey KeyFor(in FloodgatePartition partition) => KeyHasher.Hash(_seeds[(int)partition.Limit!.Algorithm], partition.Key!);
}
