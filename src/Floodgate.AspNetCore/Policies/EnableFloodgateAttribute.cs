namespace Floodgate.AspNetCore.Policies;

/// <summary>
/// Applies a named policy (registered with <c>AddFloodgate(o => o.AddPolicy(...))</c> or in configuration) to a
/// controller, an action, a Razor page or, as metadata, a minimal API endpoint (<c>RequireFloodgate</c>). Every
/// endpoint that requires one policy shares its one budget. Several policies may apply to one endpoint (one on the
/// controller, one on the action): each counts, and the first tier that rejects answers.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = true, Inherited = true)]
public sealed class EnableFloodgateAttribute : Attribute
{
    /// <summary>Applies the policy named <paramref name="policyName"/>.</summary>
    /// <param name="policyName">The policy's name; an unknown name stops the host at start.</param>
    public EnableFloodgateAttribute(string policyName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(policyName);
        PolicyName = policyName;
    }

    /// <summary>The policy's name.</summary>
    public string PolicyName { get; }
}
