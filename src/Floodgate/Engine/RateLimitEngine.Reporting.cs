using System.Diagnostics;
using Floodgate.Logging;
using Floodgate.Rules;
using Microsoft.Extensions.Logging;

namespace Floodgate.Engine;

// What the engine tells of its decisions: the decisions counter, and rejection log lines within their budget.
public sealed partial class RateLimitEngine
{
    private void Count(in RateLimitDecision decision)
    {
        if (!_decisions.Enabled)
        {
            return;
        }

        var outcome = decision.IsAllowed ? "allowed" : decision.IsShadowed ? "shadow_rejected" : "rejected";
        var tags = new TagList
        {
            { "tier", TierNames[(int)decision.Tier] },
            { "rule", decision.Rule!.Name },
            { "outcome", outcome },
        };
        if (decision.IsStoreFailure)
        {
            tags.Add("store_failure", true);
        }

        _decisions.Add(1, tags);
    }

    private void LogRejection(in RateLimitDecision decision, IRequestContext request)
    {
        Volatile.Read(ref _rejectionObserver)?.OnRejected(decision, request);
        if (!_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        // The log budget is itself a token bucket, so a flood of rejections cannot flood the logs.
        if (!_logBudget.TryTake(out var suppressed))
        {
            return;
        }

        // The subject, method and path are the client's text: escaped and cut, so that a line can neither forge nor erase
        // another, nor grow with the request. The rule's name is the policy's.
        var identity = LogValues.Escape(request.Subject ?? request.ClientIp?.ToString() ?? "anonymous");
        var method = LogValues.Escape(request.Method);
        var path = LogValues.Escape(request.Path);
        var retry = decision.IsPermanent ? "never" : decision.RetryAfter.ToString("c", System.Globalization.CultureInfo.InvariantCulture);
        if (decision.IsShadowed)
        {
            LogShadowRejected(_logger, TierNames[(int)decision.Tier], decision.Rule!.Name, identity, method, path, retry, suppressed);
        }
        else
        {
            LogRejected(_logger, TierNames[(int)decision.Tier], decision.Rule!.Name, identity, method, path, retry, suppressed);
        }
    }

    [LoggerMessage(1, LogLevel.Information, "Rejected by {Tier} rule {Rule} for {Identity}: {Method} {Path}, retry after {RetryAfter} ({Suppressed} earlier rejections not logged)")]
    private static partial void LogRejected(ILogger logger, string tier, string rule, string identity, string method, string path, string retryAfter, long suppressed);

    [LoggerMessage(2, LogLevel.Information, "Shadow rule {Rule} ({Tier}) would have rejected {Identity}: {Method} {Path}, retry after {RetryAfter} ({Suppressed} earlier rejections not logged)")]
    private static partial void LogShadowRejected(ILogger logger, string tier, string rule, string identity, string method, string path, string retryAfter, long suppressed);
}
