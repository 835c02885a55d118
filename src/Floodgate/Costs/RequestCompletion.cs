namespace Floodgate.Costs;

/// <summary>How a request ended, for its settlement (<see cref="Engine.RateLimitEngine.SettleAsync"/>).</summary>
public enum RequestCompletion
{
    /// <summary>The response was written in full: usage is charged, or the rule's fallback when none was reported.</summary>
    Completed = 0,

    /// <summary>
    /// The upstream failed (5xx, a broken connection) or the client went away: reported usage is charged, otherwise the
    /// rule's <see cref="RuleCost.OnFailure"/> decides.
    /// </summary>
    Failed,

    /// <summary>The request was never served (refused after admission, such as by a later tier): every reservation is refunded.</summary>
    NotServed,
}
