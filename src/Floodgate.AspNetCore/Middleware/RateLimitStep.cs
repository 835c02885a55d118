using System.Diagnostics;
using Floodgate.Engine;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Middleware;

/// <summary>
/// A request's rate-limit step as an OpenTelemetry activity (<see cref="FloodgateMiddleware.ActivitySourceName"/>,
/// named <c>floodgate.rate_limit</c>): from the middleware's start to its verdict, tagged with the deciding tier and
/// rule, the outcome and the time spent waiting for the store. Made only while something listens to the source, so
/// an untraced request pays one check and allocates nothing.
/// </summary>
internal sealed class RateLimitStep
{
    public const string ActivityName = "floodgate.rate_limit";

    private static readonly ActivitySource Source = new(FloodgateMiddleware.ActivitySourceName);
    private readonly Activity _activity;
    private long _storeTicks;

    private RateLimitStep(Activity activity) => _activity = activity;

    /// <summary>
    /// The step of <paramref name="context"/>'s request, or <see langword="null"/> when no one listens (or the sampler
    /// declines). Its parent is the current activity or, when the host made none (ASP.NET Core makes one only for its
    /// own listeners), the caller's <c>traceparent</c>: the span joins the caller's trace either way.
    /// </summary>
    public static RateLimitStep? Start(HttpContext context)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var parent = default(ActivityContext);
        if (Activity.Current is null)
        {
            DistributedContextPropagator.Current.ExtractTraceIdAndState(context.Request.Headers, static (carrier, name, out value, out values) =>
            {
                values = null;
                value = ((IHeaderDictionary)carrier!)[name].ToString();
            }, out var traceParent, out var traceState);
            _ = ActivityContext.TryParse(traceParent, traceState, isRemote: true, out parent);
        }

        return Source.StartActivity(ActivityName, ActivityKind.Internal, parent) is { } activity ? new RateLimitStep(activity) : null;
    }

    /// <summary>Adds the time since <paramref name="started"/> (<see cref="Stopwatch.GetTimestamp"/>) to the store time.</summary>
    public void AddStoreTime(long started) => _storeTicks += Stopwatch.GetTimestamp() - started;

    /// <summary>Tags the verdict and ends the activity: <c>allowed</c>, <c>rejected</c>, <c>store_failure</c> (denied by a closed failure mode), <c>banned</c>, <c>unauthorized</c>.</summary>
    public void Finish(string outcome, in RateLimitDecision decision)
    {
        _activity.SetTag("floodgate.outcome", outcome);
        if (decision.Rule is { } rule)
        {
            _activity.SetTag("floodgate.tier", TierName(decision));
            _activity.SetTag("floodgate.rule", rule.Name);
            _activity.SetTag("floodgate.remaining", decision.Remaining);
        }

        _activity.SetTag("floodgate.store.duration_ms", Stopwatch.GetElapsedTime(0, _storeTicks).TotalMilliseconds);
        _activity.Dispose();
    }

    /// <summary>Ends an activity left unfinished by an exception, as an error.</summary>
    public void Fail(Exception error)
    {
        if (!_activity.IsStopped)
        {
            _activity.SetStatus(ActivityStatusCode.Error, error.GetType().Name);
            _activity.Dispose();
        }
    }

    private static string TierName(in RateLimitDecision decision) => decision.Tier switch
    {
        Rules.RateLimitTier.Edge => "edge",
        Rules.RateLimitTier.User => "user",
        Rules.RateLimitTier.Service => "service",
        _ => "global",
    };
}
