namespace Floodgate.Costs;

/// <summary>What a rule charges, in its unit, once a request's usage is known (<see cref="CostReport"/>).</summary>
public enum CostMeasure
{
    /// <summary>All tokens: the reported total, else input plus output.</summary>
    TotalTokens = 0,

    /// <summary>Input (prompt) tokens.</summary>
    InputTokens,

    /// <summary>Output (completion) tokens.</summary>
    OutputTokens,

    /// <summary>The units the upstream reported in a response header or trailer, or the endpoint reported from code.</summary>
    Reported,

    /// <summary>Money, in micro-units of a currency: the tokens priced by the rule's <see cref="PriceTable"/>.</summary>
    Money,

    /// <summary>
    /// One for a response whose status is one of the rule's <see cref="RuleCost.Statuses"/>, else nothing: counts failed
    /// logins (401, 403) per client, and the rule refuses, or its edge ban bans, a key once it is over.
    /// </summary>
    ResponseStatus,
}
