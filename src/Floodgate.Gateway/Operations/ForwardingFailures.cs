using Floodgate.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

// LogValues (src/Shared) is compiled into this assembly and into Floodgate and Floodgate.Envoy too, whose internals this
// one sees: the copy compiled here is the one meant.
#pragma warning disable CS0436

namespace Floodgate.Gateway.Operations;

/// <summary>
/// Requests the proxy could not forward or complete: counted on <c>floodgate.proxy.errors</c>, and logged within a
/// budget the size of the engine's rejection log. The proxy itself logs each one with its stack trace (its
/// <c>HttpForwarder</c> warnings are filtered out for that): when an upstream goes down, every request would add one.
/// A request its client gave up on (it closed the connection, as a load tool does when it stops), or whose client side
/// failed (a request body it sent malformed, such as a bad chunked encoding, or cut short; a response it could not be
/// written), is no fault of the proxy's or the upstream's: it is counted, and logged at Debug outside the budget, so
/// that a wave of departing or broken clients neither warns nor uses up the lines an upstream failure needs. Nor is an
/// upgraded connection (a WebSocket) that neither side used for its cluster's <c>activity_timeout</c>: the timeout closed
/// it as configured, and that is logged at Debug too.
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
            if (logger.IsEnabled(LogLevel.Debug))
            {
                Log.ClientAborted(logger, Method(context), Path(context), route, error);
            }

            return;
        }

        if (failure.Error == ForwarderError.UpgradeActivityTimeout)
        {
            Log.Idle(logger, context.Request.Method, context.Request.Path.Value ?? "/", route);
            return;
        }

        if (IsClientFault(failure.Error, failure.Exception, out var reason))
        {
            if (logger.IsEnabled(LogLevel.Debug))
            {
                Log.ClientFailed(logger, Method(context), Path(context), route, error, LogValues.Escape(reason, LogValues.MaxMessageLength), context.Response.StatusCode);
            }

            return;
        }

        if (_budget.TryTake(out var suppressed))
        {
            Log.Failed(logger, Method(context), Path(context), route, error, LogValues.Escape(failure.Exception?.Message ?? string.Empty, LogValues.MaxMessageLength), context.Response.StatusCode, suppressed);
        }
    }

    // The method and the decoded path are the client's text, and an error message may quote what the client or the
    // upstream sent: escaped and cut (docs/logging.md). The route is the policy's.
    private static string Method(HttpContext context) => LogValues.Escape(context.Request.Method);

    private static string Path(HttpContext context) => LogValues.Escape(context.Request.Path.Value ?? "/");

    private static bool IsClientAbort(ForwarderError error) => error is ForwarderError.RequestCanceled
        or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled
        or ForwarderError.UpgradeRequestCanceled or ForwarderError.UpgradeResponseCanceled;

    /// <summary>
    /// Whether the client's side of the exchange failed: YARP's errors of reading from or writing to the client, or
    /// anything Kestrel refused as a bad request (it throws <see cref="BadHttpRequestException"/> when a body is
    /// malformed, too large or cut short, whatever error YARP filed it under).
    /// </summary>
    private static bool IsClientFault(ForwarderError error, Exception? exception, out string reason)
    {
        var bad = BadRequestIn(exception);
        reason = bad?.Message ?? FirstCause(exception)?.Message ?? string.Empty;
        return bad is not null || error is ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient
            or ForwarderError.UpgradeRequestClient or ForwarderError.UpgradeResponseClient;
    }

    private static BadHttpRequestException? BadRequestIn(Exception? exception) => exception switch
    {
        null => null,
        BadHttpRequestException bad => bad,
        AggregateException all => all.InnerExceptions.Select(BadRequestIn).FirstOrDefault(e => e is not null),
        _ => BadRequestIn(exception.InnerException),
    };

    /// <summary>The first exception of an aggregate (YARP pairs the client's error with the one it caused), or the exception.</summary>
    private static Exception? FirstCause(Exception? exception) =>
        exception is AggregateException { InnerExceptions.Count: > 0 } all ? all.InnerExceptions[0] : exception;

    private static partial class Log
    {
        [LoggerMessage(41, LogLevel.Debug, "Forwarding {Method} {Path} (route {Route}) stopped: {Error}, the client went away")]
        public static partial void ClientAborted(ILogger logger, string method, string path, string route, string error);

        [LoggerMessage(42, LogLevel.Debug, "Forwarding {Method} {Path} (route {Route}) stopped: {Error}, the client's request body or connection failed ({Reason}); answered {Status}")]
        public static partial void ClientFailed(ILogger logger, string method, string path, string route, string error, string reason, int status);

        [LoggerMessage(43, LogLevel.Debug, "Forwarding {Method} {Path} (route {Route}) ended: the upgraded connection was idle for its cluster's activity timeout, and was closed")]
        public static partial void Idle(ILogger logger, string method, string path, string route);

        [LoggerMessage(40, LogLevel.Warning, "Forwarding {Method} {Path} (route {Route}) failed: {Error}: {Reason}; answered {Status} ({Suppressed} earlier failures not logged)")]
        public static partial void Failed(ILogger logger, string method, string path, string route, string error, string reason, int status, long suppressed);
    }
}
