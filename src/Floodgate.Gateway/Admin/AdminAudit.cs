using Floodgate.Logging;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Admin;

/// <summary>The admin log: every change made through the admin API, with the token that made it and what it changed.</summary>
internal static partial class AdminAudit
{
    /// <summary>The category of the admin log's lines.</summary>
    public const string Category = "Floodgate.Admin";

    /// <summary>Logs that the token <paramref name="token"/> did <paramref name="action"/> to <paramref name="target"/>; values from the request are escaped.</summary>
    public static void Changed(ILogger logger, string token, string action, string target, string change) =>
        LogChanged(logger, token, action, LogValues.Escape(target)!, LogValues.Escape(change)!);

    [LoggerMessage(1, LogLevel.Information, "Admin change by token {Token}: {Action} {Target}: {Change}")]
    private static partial void LogChanged(ILogger logger, string token, string action, string target, string change);
}
