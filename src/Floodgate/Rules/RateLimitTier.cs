namespace Floodgate.Rules;

/// <summary>The tiers, in the order a request meets them.</summary>
public enum RateLimitTier
{
    /// <summary>Per client IP, before authentication: sheds floods cheaply. Rejects with 429.</summary>
    Edge,

    /// <summary>Per subject and endpoint, after authentication: plans, bursts, quotas and costs. Rejects with 429.</summary>
    User,

    /// <summary>Per endpoint: capacity and concurrency. Rejects with 503.</summary>
    Service,

    /// <summary>One ceiling for the whole system. Rejects with 503.</summary>
    Global,
}
