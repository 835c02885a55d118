namespace Floodgate.Rules;

/// <summary>Whether a rule rejects.</summary>
public enum RuleMode
{
    /// <summary>The rule rejects requests over its limit.</summary>
    Enforce,

    /// <summary>The rule is counted, logged and measured as if enforced, but never rejects: how a new limit is rolled out.</summary>
    Shadow,
}
