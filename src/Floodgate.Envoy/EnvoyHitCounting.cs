namespace Floodgate.Envoy;

/// <summary>Which hits the Envoy service counts: those over a limit too, as envoyproxy/ratelimit does, or only those within.</summary>
public enum EnvoyHitCounting
{
    /// <summary>
    /// Every hit is counted, over the limit or not, as the reference does by default (its <c>INCRBY</c>): after an
    /// overshoot the counter stays over the limit until it refills, so a check of <c>hits_addend: 0</c> answers
    /// <c>OVER_LIMIT</c>. This is what makes a budget charged after the response (<c>apply_on_stream_done</c>) hold.
    /// </summary>
    All = 0,

    /// <summary>
    /// The reference's <c>STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT</c>: when a descriptor of the request would go over its
    /// limit, the request's other descriptors are not counted, while each one that goes over still is.
    /// </summary>
    StopWhenOverLimit = 1,

    /// <summary>
    /// Floodgate's own: a hit over the limit is never counted, so a large <c>hits_addend</c> that does not fit leaves the
    /// budget as it was (the copies of a repeated descriptor that fit are counted). A budget charged after the response
    /// then never blocks: use <see cref="All"/> for that.
    /// </summary>
    WithinLimit = 2,
}
