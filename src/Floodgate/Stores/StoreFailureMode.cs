namespace Floodgate.Stores;

/// <summary>
/// How a check is answered while a remote store cannot be reached (a timeout, a broken connection, an open circuit
/// breaker). The in-process store never fails, and ignores it.
/// </summary>
public enum StoreFailureMode : byte
{
    /// <summary>As the store is configured (its own <c>on_failure</c>).</summary>
    Default,

    /// <summary>Allow: an outage must not take the API down with it.</summary>
    Open,

    /// <summary>Deny, with 503: the limit protects something that must not be overrun.</summary>
    Closed,

    /// <summary>Decide in process, each replica holding its share of the limit.</summary>
    Local,
}
