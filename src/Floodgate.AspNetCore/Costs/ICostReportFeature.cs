using Floodgate.Costs;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// The usage of a request that holds cost reservations (a matching rule has <see cref="Rules.RateLimitRule.Costs"/>):
/// present on <see cref="Microsoft.AspNetCore.Http.HttpContext.Features"/> from admission until the request is settled,
/// when the response ends. The middleware fills it from the response (a usage object, a header or trailer); an endpoint
/// may fill it from code (<see cref="CostReportingExtensions"/>).
/// </summary>
public interface ICostReportFeature
{
    /// <summary>What the request used so far; the request's own until its response ends, not to be kept past it.</summary>
    CostReport Report { get; }
}
