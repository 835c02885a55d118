namespace Floodgate.Redis;

/// <summary>
/// A consecutive-failure circuit breaker: after a threshold of failures in a row it opens for a duration, answering
/// without calling; then one call probes, and its success closes the breaker.
/// </summary>
/// <remarks>The closed state, the hot path, costs one volatile read.</remarks>
internal sealed class CircuitBreaker(int threshold, long breakMicroseconds)
{
    private const int Closed = 0;
    private const int Open = 1;
    private const int Probing = 2;

    private readonly Lock _gate = new();
    private int _state;
    private int _failures;
    private long _openUntil;

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

        lock (_gate)
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

    public void OnSuccess()
    {
        if (Volatile.Read(ref _state) == Closed && Volatile.Read(ref _failures) == 0)
        {
            return;
        }

        lock (_gate)
        {
            _failures = 0;
            _state = Closed;
        }
    }

    /// <summary>Records a failure; <see langword="true"/> when it opened the breaker.</summary>
    public bool OnFailure(long now)
    {
        lock (_gate)
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
