using Floodgate.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace Floodgate.Gateway.Operations;

/// <summary>
/// Requests the proxy could not forward or complete: counted on <c>floodgate.proxy.errors</c>, and logged within a
/// budget the size of the engine's rejection log. The proxy itself logs each one with its stack trace (its
/// <c>HttpForwarder</c> warnings are filtered out for that): when an upstream goes down, every request would add one.
/// A request its client gave up on (it closed the connection, as a load tool does when it stops) is no fault of the
/// proxy's or the upstream's: it is counted, and logged at Debug outside the budget, so that a wave of departing
/// clients neither warns nor uses up the lines an upstream failure needs.
/// </summary>
internal sealed partial class ForwardingFailures(ILogger logger, TimeProvider time)
{
    private readonly LogBudget _budget = new(time);

    /// <summary>Counts and, within the budget, logs the failure of <paramref name="context"/>'s request, if it failed.</summary>
    public void Report(HttpContext context, string route)
    {
        if (context.GetForwarderErrorFeature() is not { Error: not ForwarderError.None } failure)
        {
            return;
        }

        var error = failure.Error.ToString();
        GatewayMetrics.ProxyErrors.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("error", error));
        if (IsClientAbort(failure.Error))
        {
            Log.ClientAborted(logger, context.Request.Method, context.Request.Path.Value ?? "/", route, error);
            return;
        }

        if (_budget.TryTake(out var suppressed))
        {
            Log.Failed(logger, context.Request.Method, context.Request.Path.Value ?? "/", route, error, failure.Exception?.Message ?? string.Empty, context.Response.StatusCode, suppressed);
        }
    }

    private static bool IsClientAbort(ForwarderError error) => error is ForwarderError.RequestCanceled
        or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled
        or ForwarderError.UpgradeRequestCanceled or ForwarderError.UpgradeResponseCanceled;

    private static partial class Log
    {
        [LoggerMessage(41, LogLevel.Debug, "Forwarding {Method} {Path} (route {Route}) stopped: {Error}, the client went away")]
        public static partial void ClientAborted(ILogger logger, string method, string path, string route, string error);

        [LoggerMessage(40, LogLevel.Warning, "Forwarding {Method} {Path} (route {Route}) failed: {Error}: {Reason}; answered {Status} ({Suppressed} earlier failures not logged)")]
        public static partial void Failed(ILogger logger, string method, string path, string route, string error, string reason, int status, long suppressed);
    }
}
