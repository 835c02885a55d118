using Floodgate.Costs;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Costs;

/// <summary>
/// Lets an endpoint report its own cost, for rules with <see cref="Rules.RateLimitRule.Costs"/>: what it reports is
/// settled against what the rule reserved when the response ends, by the same rules as a cost the upstream reports
/// (a refund when it cost less, an extra charge when more; a failure or an abandoned request settles what was reported).
/// </summary>
public static class CostReportingExtensions
{
    /// <summary>
    /// Reports the request's cost in the rules' own units (<see cref="CostMeasure.Reported"/>, or money in micro-units).
    /// </summary>
    /// <returns><see langword="false"/> when no rule reserved for this request, so there is nothing to settle.</returns>
    public static bool ReportCost(this HttpContext context, long units)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(units);
        if (context.Features.Get<ICostReportFeature>() is not { } feature)
        {
            return false;
        }

        feature.Report.Units = units;
        return true;
    }

    /// <summary>Reports the tokens the request used, and the model that served it to price them by.</summary>
    /// <returns><see langword="false"/> when no rule reserved for this request, so there is nothing to settle.</returns>
    public static bool ReportUsage(this HttpContext context, long inputTokens, long outputTokens, string? model = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(inputTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(outputTokens);
        if (context.Features.Get<ICostReportFeature>() is not { } feature)
        {
            return false;
        }

        var report = feature.Report;
        report.InputTokens = inputTokens;
        report.OutputTokens = outputTokens;
        report.TotalTokens = null;
        report.Model = model ?? report.Model;
        return true;
    }
}
