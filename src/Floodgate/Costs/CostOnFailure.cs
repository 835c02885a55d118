namespace Floodgate.Costs;

/// <summary>
/// What a rule charges for a request that failed upstream (a 5xx, a broken connection) or that its client abandoned,
/// when no usage was reported before it ended. Usage that was reported is always charged.
/// </summary>
public enum CostOnFailure
{
    /// <summary>Nothing: the reservation is refunded in full.</summary>
    Refund = 0,

    /// <summary>The rule's fallback charge, as for a response that reported no usage.</summary>
    Charge,
}
