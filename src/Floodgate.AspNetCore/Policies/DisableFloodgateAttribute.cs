namespace Floodgate.AspNetCore.Policies;

/// <summary>
/// Exempts a controller, an action, a Razor page or, as metadata, a minimal API endpoint (<c>DisableFloodgate()</c>)
/// from Floodgate: no tier, policy or endpoint rule counts or refuses its requests. It wins over any policy the
/// endpoint requires, as <c>[DisableRateLimiting]</c> does for the built-in limiter.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false, Inherited = true)]
public sealed class DisableFloodgateAttribute : Attribute
{
    internal static DisableFloodgateAttribute Instance { get; } = new();
}
