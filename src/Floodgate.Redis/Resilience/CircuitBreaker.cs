namespace Floodgate.Redis;

/// <summary>
/// A consecutive-failure circuit breaker: after a threshold of failures in a row it opens for a duration, answering
/// without calling; then one call probes, and its success closes the breaker.
/// </summary>
/// <remarks>
/// The closed state, the hot path, costs one volatile read. A store on one node (or following Sentinel's master) has
/// one; a store on a cluster has one per master, so one node's failures never answer another's keys.
/// </remarks>
internal sealed class CircuitBreaker(int threshold, long breakMicroseconds, string node = "redis")
{
    private const int Closed = 0;
    private const int Open = 1;
    private const int Probing = 2;

    /// <summary>Guards the transitions of <see cref="_state"/>, <see cref="_failures"/> and <see cref="_openUntil"/>.</summary>
    private readonly Lock _stateLock = new();
    private int _state;
    private int _failures;
    private long _openUntil;

    /// <summary>The node whose calls it judges, as logs name it: its endpoint, or <c>redis</c> for the store's own.</summary>
    public string Node { get; } = node;

    public bool IsClosed => Volatile.Read(ref _state) == Closed;

    /// <summary>When open, how long until the next probe, in microseconds; 0 otherwise.</summary>
    public long RetryAfter(long now) => Volatile.Read(ref _state) == Closed ? 0 : Math.Max(0, Volatile.Read(ref _openUntil) - now);

    /// <summary>Whether a call may go to Redis now; when open and due, lets exactly one probe through.</summary>
    public bool TryEnter(long now)
    {
        if (Volatile.Read(ref _state) == Closed)
        {
            return true;
        }

        lock (_stateLock)
        {
            // Open and due, or a probe that never reported back (its caller gave up): let one call probe.
            if (_state != Closed && now >= _openUntil)
            {
                _state = Probing;
                _openUntil = now + breakMicroseconds;
                return true;
            }

            return _state == Closed;
        }
    }

    /// <summary>Records a success; <see langword="true"/> when it closed an open breaker (its probe succeeded).</summary>
    public bool OnSuccess()
    {
        if (Volatile.Read(ref _state) == Closed && Volatile.Read(ref _failures) == 0)
        {
            return false;
        }

        lock (_stateLock)
        {
            var closed = _state != Closed;
            _failures = 0;
            _state = Closed;
            return closed;
        }
    }

    /// <summary>Closes the breaker and forgets its failures: the calls it judged went to a connection that is gone.</summary>
    public void Reset()
    {
        lock (_stateLock)
        {
            _failures = 0;
            _state = Closed;
        }
    }

    /// <summary>Records a failure; <see langword="true"/> when it opened the breaker.</summary>
    public bool OnFailure(long now)
    {
        lock (_stateLock)
        {
            _failures++;
            if (_state == Probing || (_state == Closed && _failures >= threshold))
            {
                _state = Open;
                _openUntil = now + breakMicroseconds;
                return true;
            }

            return false;
        }
    }
}
