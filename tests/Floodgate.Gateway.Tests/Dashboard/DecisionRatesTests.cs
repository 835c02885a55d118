using System.Diagnostics;
using System.Diagnostics.Metrics;
using Floodgate.Gateway.Dashboard;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests.Dashboard;

public sealed class DecisionRatesTests
{
    [Fact]
    public void Counts_per_second_by_tier_and_outcome_and_forgets_seconds_past_the_window()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 20, 0, 0, TimeSpan.Zero));
        using var rates = new DecisionRates(time);
        rates.Record("user", "rejected", 3);
        time.Advance(TimeSpan.FromSeconds(1));
        rates.Record("user", "rejected", 2);
        rates.Record("edge", "allowed", 7);
        rates.Record("nowhere", "allowed", 5);

        var snapshot = rates.Snapshot(5);
        var rejected = Assert.Single(snapshot.Series, s => s.Tier == "user" && s.Outcome == "rejected");
        Assert.Equal([0, 0, 0, 3, 2], rejected.PerSecond);
        Assert.Equal(5, rejected.Total);
        Assert.Equal(7, Assert.Single(snapshot.Series, s => s.Tier == "edge").Total);
        Assert.Equal(2, snapshot.Series.Count);

        // A full ring later, the slots are reused: the old seconds are gone, not added to.
        time.Advance(TimeSpan.FromSeconds(DecisionRates.Seconds));
        rates.Record("user", "rejected", 1);
        var later = Assert.Single(rates.Snapshot(DecisionRates.Seconds).Series);
        Assert.Equal(1, later.Total);
    }

    [Fact]
    public void Is_fed_by_the_engines_decision_counter_without_allocating()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 20, 0, 0, TimeSpan.Zero));
        using var rates = new DecisionRates(time);
        // A meter of the engine's name and its counter's name: what the listener follows. Its rule tag is this test's own.
        using var meter = new Meter(Floodgate.Engine.RateLimitEngine.MeterName);
        var decisions = meter.CreateCounter<long>("floodgate.decisions");
        var tags = new TagList { { "tier", "service" }, { "rule", $"rates-test-{Guid.NewGuid()}" }, { "outcome", "shadow_rejected" } };
        decisions.Add(1, tags);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1_000; i++)
        {
            decisions.Add(1, tags);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        var series = rates.Snapshot(1).Series.Single(s => s.Tier == "service" && s.Outcome == "shadow_rejected");
        // At least this test's decisions: other tests' engines in this process count on the same meter name.
        Assert.True(series.Total >= 1_001);
    }
}
