using System.Collections.Concurrent;
using Floodgate.Keys;
using Floodgate.Stores;

namespace Floodgate.Redis;

/// <summary>
/// Leased mode's local budgets: for each leased key, the part of a slice this replica took from Redis and has not spent.
/// </summary>
/// <remarks>
/// A replica holds at most one slice per key: a new slice replaces what is left of the old one, and while one request
/// is taking a slice, other requests for the key are decided in Redis (strictly). So this replica never holds more than
/// <see cref="Floodgate.Limits.Limit.LeasedSlice"/> unspent units of a key, the basis of the overshoot bound.
/// </remarks>
internal sealed class LeaseSlices(long lifetimeMicroseconds)
{
    /// <summary>The most keys that hold a slice; beyond it, new leased keys are decided strictly.</summary>
    public const int MaxKeys = 65_536;

    private readonly ConcurrentDictionary<StoreKey, Slice> _slices = new();

    public enum Take
    {
        /// <summary>The cost was taken from the local slice.</summary>
        Local,

        /// <summary>The slice is spent: this request should take a new slice from Redis.</summary>
        Acquire,

        /// <summary>Another request is taking a slice: decide this one strictly in Redis.</summary>
        Strict,
    }

    public int Count => _slices.Count;

    /// <summary>Tries to spend the cost from the local slice of <paramref name="check"/>'s key.</summary>
    public Take TryTake(in RateLimitCheck check, long localNow, out long left, bool mayAcquire = true)
    {
        if (!_slices.TryGetValue(check.Key, out var slice))
        {
            if (_slices.Count >= MaxKeys)
            {
                Sweep(localNow);
                if (_slices.Count >= MaxKeys)
                {
                    left = 0;
                    return Take.Strict;
                }
            }

            slice = _slices.GetOrAdd(check.Key, static _ => new Slice());
        }

        lock (slice)
        {
            if (slice.Expires > localNow && slice.Tokens >= check.Cost && ReferenceEquals(slice.Limit, check.Limit))
            {
                slice.Tokens -= check.Cost;
                left = slice.Tokens;
                return Take.Local;
            }

            left = 0;
            if (slice.Acquiring || !mayAcquire)
            {
                return Take.Strict;
            }

            slice.Acquiring = true;
            slice.Pending = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return Take.Acquire;
        }
    }

    /// <summary>Gives back the cost taken by <see cref="TryTake"/> whose group was then denied.</summary>
    public void Refund(in RateLimitCheck check)
    {
        if (_slices.TryGetValue(check.Key, out var slice))
        {
            lock (slice)
            {
                if (ReferenceEquals(slice.Limit, check.Limit))
                {
                    slice.Tokens += check.Cost;
                }
            }
        }
    }

    /// <summary>Ends an acquisition: with <paramref name="granted"/> above the cost, the rest becomes the new local slice.</summary>
    public long Acquired(in RateLimitCheck check, long granted, long localNow)
    {
        if (!_slices.TryGetValue(check.Key, out var slice))
        {
            return 0;
        }

        lock (slice)
        {
            slice.Acquiring = false;
            slice.Pending?.TrySetResult();
            slice.Pending = null;
            if (granted > check.Cost)
            {
                slice.Limit = check.Limit;
                slice.Tokens = granted - check.Cost;
                slice.Expires = localNow + lifetimeMicroseconds;
                return slice.Tokens;
            }

            return 0;
        }
    }

    /// <summary>
    /// When the local slice cannot pay for the check but another request is taking a new slice, the task that completes
    /// when it has; otherwise <see langword="null"/>.
    /// </summary>
    public Task? Pending(in RateLimitCheck check, long localNow)
    {
        if (!_slices.TryGetValue(check.Key, out var slice))
        {
            return null;
        }

        lock (slice)
        {
            var payable = slice.Expires > localNow && slice.Tokens >= check.Cost && ReferenceEquals(slice.Limit, check.Limit);
            return !payable && slice.Acquiring ? slice.Pending?.Task : null;
        }
    }

    /// <summary>How long the local slice of <paramref name="check"/>'s key still lives, in microseconds.</summary>
    public long Lifetime(in RateLimitCheck check, long localNow) =>
        _slices.TryGetValue(check.Key, out var slice) ? Math.Max(0, Volatile.Read(ref slice.Expires) - localNow) : 0;

    private void Sweep(long localNow)
    {
        foreach (var (key, slice) in _slices)
        {
            if (!Volatile.Read(ref slice.Acquiring) && Volatile.Read(ref slice.Expires) <= localNow)
            {
                _slices.TryRemove(key, out _);
            }
        }
    }

    private sealed class Slice
    {
        public Floodgate.Limits.Limit? Limit;
        public long Tokens;
        public long Expires;
        public bool Acquiring;
        public TaskCompletionSource? Pending;
    }
}
