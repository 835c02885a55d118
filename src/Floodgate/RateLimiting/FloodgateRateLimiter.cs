using System.Threading.RateLimiting;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.RateLimiting;

/// <summary>
/// A <see cref="RateLimiter"/> backed by a Floodgate store: one limit on one key, shared by every replica when the store
/// is shared. Plugs into anything that takes a <see cref="RateLimiter"/>, such as Polly's rate limiter strategy.
/// </summary>
/// <remarks>
/// The limiter never queues. <see cref="RateLimiter.AttemptAcquire(int)"/> never waits for I/O: on a store that needs a
/// round trip it returns a lease that is not acquired, with a reason phrase, having consumed nothing, and
/// <see cref="RateLimiter.AcquireAsync(int, CancellationToken)"/> decides. Failed leases carry
/// <see cref="MetadataName.RetryAfter"/> unless the permit count can never fit. Disposing the lease of a concurrency
/// limit releases its permit. As with the built-in limiters, a permit count of 0 asks whether at least one permit is
/// available: it is acquired when one is, consumes nothing, and otherwise fails with a retry-after.
/// </remarks>
public sealed class FloodgateRateLimiter : RateLimiter
{
    private readonly FloodgateRateLimiterCore _core;
    private readonly RateLimitCheck _check;
    private int _disposed;

    /// <summary>Creates a limiter.</summary>
    /// <param name="store">Where the state lives.</param>
    /// <param name="limit">The limit.</param>
    /// <param name="name">The key in the store: limiters with the same name and limit algorithm share state.</param>
    /// <exception cref="ArgumentException">The limit is a leaky bucket queue, which delays what it admits: a limiter never waits.</exception>
    public FloodgateRateLimiter(IRateLimitStore store, Limit limit, string name = "default")
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(limit);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (limit.MaxDelay > TimeSpan.Zero)
        {
            throw new ArgumentException("A leaky_bucket queue (MaxDelay) delays what it admits, and this limiter never waits: use a leaky bucket meter, or the engine with a front door that waits.", nameof(limit));
        }

        _core = new FloodgateRateLimiterCore(store);
        _check = new RateLimitCheck(limit, StoreKey.Create("rate-limiter:" + limit.Algorithm, name), 1, false);
    }

    /// <summary>Always <see langword="null"/>: the state lives in the store, which forgets idle keys by itself.</summary>
    public override TimeSpan? IdleDuration => null;

    /// <inheritdoc/>
    public override RateLimiterStatistics? GetStatistics()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return _core.Statistics(_check);
    }

    /// <inheritdoc/>
    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return _core.AttemptAcquire(FloodgateRateLimiterCore.ForPermits(_check, 1, permitCount));
    }

    /// <inheritdoc/>
    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var check = FloodgateRateLimiterCore.ForPermits(_check, 1, permitCount);
        var lease = _core.AttemptAcquire(check);
        return lease == FloodgateLease.Pending ? _core.AcquireAsync(check, cancellationToken) : new ValueTask<RateLimitLease>(lease);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        Interlocked.Exchange(ref _disposed, 1);
        base.Dispose(disposing);
    }
}
