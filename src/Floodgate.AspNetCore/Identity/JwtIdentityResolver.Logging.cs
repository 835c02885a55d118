using Microsoft.Extensions.Logging;

namespace Floodgate.AspNetCore.Identity;

// Rejections: counted, and logged within a budget.
public sealed partial class JwtIdentityResolver
{
    private IdentityResult Reject((string Description, string Outcome) reason) => Reject(reason.Description, reason.Outcome);

    private IdentityResult Reject(string description, string outcome) =>
        Reject(IdentityResult.Invalid(IdentityErrors.InvalidToken, description), outcome);

    private IdentityResult Reject(IdentityResult result, string outcome)
    {
        _metrics.Outcome(outcome);

        // Within a log budget of the engine's size (this resolver's own), so that a flood of bad tokens cannot flood the log.
        if (_logger.IsEnabled(LogLevel.Debug) && _logBudget.TryTake(out var suppressed))
            LogRejected(_logger, outcome, suppressed);
        return result;
    }

    [LoggerMessage(EventId = 4100, Level = LogLevel.Debug, Message = "Bearer token rejected: {Reason} ({Suppressed} earlier rejections not logged).")]
    private static partial void LogRejected(ILogger logger, string reason, long suppressed);
}
