using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// Each request's rate-limit step is an activity of <see cref="FloodgateMiddleware.ActivitySourceName"/>, seen here by
/// a real <see cref="ActivityListener"/>: tagged with the deciding tier, rule and outcome and the store time, ended
/// before the endpoint runs, a child of the caller's trace.
/// </summary>
public sealed class RateLimitStepTests
{
    [Fact]
    public async Task Each_decision_is_an_activity_tagged_with_its_tier_rule_outcome_and_store_time()
    {
        var steps = new ConcurrentQueue<Activity>();
        using var listener = Listen(steps);
        Activity? inEndpoint = null;
        await using var app = await TestApp.StartAsync(
            o => o.Policy = new RateLimitPolicy([new RateLimitRule("traced-per-user", RateLimitTier.User, Limit.Gcra(Rate.Parse("1/min")))]),
            a => a.MapGet("/", () =>
            {
                inEndpoint = Activity.Current;
                return "hi";
            }));

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/"))
        {
            // The caller's trace: the step is its child.
            request.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
            using var ok = await app.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using (var over = await app.Client.GetAsync(new Uri("/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
        }

        var mine = steps.Where(a => (string?)a.GetTagItem("floodgate.rule") == "traced-per-user").ToList();
        Assert.Equal(2, mine.Count);
        var (allowed, rejected) = (mine[0], mine[1]);
        Assert.Equal(RateLimitStep.ActivityName, allowed.OperationName);
        Assert.Equal("allowed", allowed.GetTagItem("floodgate.outcome"));
        Assert.Equal("user", allowed.GetTagItem("floodgate.tier"));
        Assert.Equal(0L, allowed.GetTagItem("floodgate.remaining"));
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", allowed.TraceId.ToHexString());
        Assert.Equal("rejected", rejected.GetTagItem("floodgate.outcome"));
        Assert.InRange((double)rejected.GetTagItem("floodgate.store.duration_ms")!, 0, 30_000);
        Assert.True(allowed.IsStopped && rejected.IsStopped);

        // The step ended before the endpoint ran: the endpoint's activity is not it.
        Assert.NotSame(allowed, inEndpoint);
    }

    [Fact]
    public void Without_a_listener_no_step_is_made()
    {
        // No listener of this source in this class's other test now: xunit runs a class's tests one at a time.
        Assert.Null(RateLimitStep.Start(new DefaultHttpContext()));
        var steps = new ConcurrentQueue<Activity>();
        using var listener = Listen(steps);
        var step = RateLimitStep.Start(new DefaultHttpContext());
        Assert.NotNull(step);
        step.Finish("allowed", default);
        Assert.Contains(steps, a => (string?)a.GetTagItem("floodgate.outcome") == "allowed" && a.GetTagItem("floodgate.rule") is null);
    }

    private static ActivityListener Listen(ConcurrentQueue<Activity> stopped)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == FloodgateMiddleware.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }
}
