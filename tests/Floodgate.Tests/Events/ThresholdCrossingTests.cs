using Floodgate.Engine;
using Floodgate.Events;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Events;

public sealed class ThresholdCrossingTests
{
    private sealed class Recorder : IThresholdObserver
    {
        public List<ThresholdCrossing> Crossings { get; } = [];

        public void OnCrossed(ThresholdCrossing crossing) => Crossings.Add(crossing);
    }

    private static (RateLimitEngine Engine, Recorder Recorder, FakeTimeProvider Time) Start(Limit limit, long cost = 1)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 12, 0, 30, TimeSpan.Zero));
        var rule = new RateLimitRule("monthly", RateLimitTier.User, limit) { Key = [KeyPart.Subject], Cost = cost, Thresholds = [50, 80, 100] };
        var recorder = new Recorder();
        var engine = new RateLimitEngine(new RateLimitPolicy([rule]), new MemoryStore(null, time), time) { ThresholdObserver = recorder };
        return (engine, recorder, time);
    }

    [Fact]
    public async Task Each_threshold_is_crossed_by_exactly_one_admitted_request_and_never_by_a_refused_one()
    {
        var (engine, recorder, _) = Start(Limit.FixedWindow(Rate.Parse("10/h")));
        var alice = new RequestContext { Subject = "alice", Plan = "pro" };
        var admitted = 0;
        for (var i = 0; i < 14; i++)
        {
            admitted += (await engine.EvaluateAsync(alice)).IsAllowed ? 1 : 0;
        }

        Assert.Equal(10, admitted);
        Assert.Equal([(50, 5L), (80, 8L), (100, 10L)], recorder.Crossings.Select(c => (c.Percent, c.Used)));
        var crossing = recorder.Crossings[0];
        Assert.Equal(("alice", "pro", 10L, "10/h"), (crossing.Subject, crossing.Plan, crossing.Limit, crossing.Rate));
        Assert.Equal(new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero), crossing.PeriodStart);
        Assert.Equal(new DateTimeOffset(2026, 1, 5, 13, 0, 0, TimeSpan.Zero), crossing.PeriodEnd);
    }

    [Fact]
    public async Task A_cost_that_jumps_over_thresholds_crosses_each_of_them_once()
    {
        var (engine, recorder, _) = Start(Limit.Quota(Rate.Parse("10/h"), null), cost: 4);
        var alice = new RequestContext { Subject = "alice" };
        Assert.True((await engine.EvaluateAsync(alice)).IsAllowed);
        Assert.Empty(recorder.Crossings);
        Assert.True((await engine.EvaluateAsync(alice)).IsAllowed);
        Assert.Equal([(50, 8L), (80, 8L)], recorder.Crossings.Select(c => (c.Percent, c.Used)));
        Assert.False((await engine.EvaluateAsync(alice)).IsAllowed);
        Assert.Equal(2, recorder.Crossings.Count);
    }

    [Fact]
    public async Task The_memory_ledger_records_each_key_once_per_period_and_lists_the_latest_first()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 12, 0, 30, TimeSpan.Zero));
        var ledger = new MemoryThresholdLedger(time);
        var start = new DateTimeOffset(2026, 1, 5, 12, 0, 0, TimeSpan.Zero);
        ThresholdEvent Make(int threshold, DateTimeOffset periodStart) =>
            new(Guid.NewGuid().ToString(), "monthly", "alice", null, threshold, 8, 10, "10/h", periodStart, periodStart.AddHours(1), time.GetUtcNow());
        Assert.True(await ledger.TryRecordAsync(Make(80, start)));
        Assert.False(await ledger.TryRecordAsync(Make(80, start)));
        Assert.True(await ledger.TryRecordAsync(Make(100, start)));
        time.Advance(TimeSpan.FromHours(1));
        Assert.True(await ledger.TryRecordAsync(Make(80, start.AddHours(1))));
        Assert.Equal([80, 100, 80], (await ledger.RecentAsync(10)).Select(e => e.Threshold));
        var first = (await ledger.RecentAsync(1))[0];
        Assert.Equal(first, ThresholdEvent.FromJson(first.ToJson()));
    }
}
