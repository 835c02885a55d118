namespace Floodgate.Redis;

/// <summary>How the Redis store answers while Redis cannot be reached (the <c>on_failure</c> setting).</summary>
public enum RedisFailureMode
{
    /// <summary>Allow every request: availability over enforcement. The default, as in Envoy's rate limit service.</summary>
    Open,

    /// <summary>Deny every request (the front doors answer 503) until Redis is back.</summary>
    Closed,

    /// <summary>
    /// Decide in an in-memory store in this process, with every limit divided by <see cref="RedisStoreOptions.Replicas"/>,
    /// so the replicas together stay close to the shared limit.
    /// </summary>
    Local,
}
