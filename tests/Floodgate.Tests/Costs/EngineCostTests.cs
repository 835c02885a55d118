using System.Diagnostics.Metrics;
using Floodgate.Costs;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Costs;

/// <summary>Reserve, then settle, through the engine on the memory store and a fake clock.</summary>
public sealed class EngineCostTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 2, 12, 0, 0, TimeSpan.Zero);

    private static RequestContext Alice(long maxTokens) => new() { Subject = "alice", Path = "/v1/chat", Fields = new Dictionary<string, string> { ["max_tokens"] = maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture), ["model"] = "small" } };

    private static (RateLimitEngine Engine, MemoryStore Store) Make(RuleCost cost, string limit = "1000/d", params RateLimitRule[] more)
    {
        var store = new MemoryStore(timeProvider: new FakeTimeProvider(Start));
        var rule = new RateLimitRule("tokens", RateLimitTier.User, Limit.Quota(Rate.Parse(limit), QuotaCalendar.Utc)) { Costs = cost };
        return (new RateLimitEngine(new RateLimitPolicy([rule, .. more]), store, new FakeTimeProvider(Start)), store);
    }

    [Fact]
    public async Task A_fan_out_is_cut_at_admission_by_its_reservations_and_settles_to_the_real_cost()
    {
        var (engine, _) = Make(new RuleCost { Reserve = CostEstimate.FromField("max_tokens", add: 100) });

        // 50 calls at once, each reserving 200 of 1000: five are admitted, the rest refused before any upstream call.
        var results = new List<RateLimitResult>();
        for (var i = 0; i < 50; i++)
        {
            results.Add(await engine.EvaluateAsync(Alice(100)));
        }

        var admitted = results.Where(r => r.IsAllowed).ToList();
        Assert.Equal(5, admitted.Count);
        Assert.All(admitted, r => Assert.True(r.HasReservations));
        Assert.All(results.Where(r => !r.IsAllowed), r => Assert.True(r.Decision.RetryAfter > TimeSpan.Zero && !r.HasReservations));

        // Each used 150: 50 come back from each, 250 in all, room for one more reservation of 200.
        foreach (var result in admitted)
        {
            await engine.SettleAsync(result, new CostReport { InputTokens = 100, OutputTokens = 50 }, RequestCompletion.Completed);
        }

        Assert.True((await engine.EvaluateAsync(Alice(100))).IsAllowed);
        Assert.False((await engine.EvaluateAsync(Alice(100))).IsAllowed);
    }

    [Fact]
    public async Task An_overrun_overdraws_the_key_which_then_refuses_even_requests_that_reserve_nothing()
    {
        var (engine, _) = Make(new RuleCost());
        var result = await engine.EvaluateAsync(Alice(0));
        Assert.True(result.IsAllowed);
        await engine.SettleAsync(result, new CostReport { TotalTokens = 1500 }, RequestCompletion.Completed);
        var refused = await engine.EvaluateAsync(Alice(0));
        Assert.False(refused.IsAllowed);
        Assert.Equal(0, refused.Decision.Remaining);
        Assert.Equal(TimeSpan.FromHours(12), refused.Decision.RetryAfter);
    }

    [Theory]
    [InlineData(RequestCompletion.Completed, CostOnFailure.Refund, null, 200)] // no usage: the reservation stands
    [InlineData(RequestCompletion.Completed, CostOnFailure.Refund, 30L, 30)] // no usage: the fallback
    [InlineData(RequestCompletion.Failed, CostOnFailure.Refund, 30L, 0)]
    [InlineData(RequestCompletion.Failed, CostOnFailure.Charge, 30L, 30)]
    [InlineData(RequestCompletion.Failed, CostOnFailure.Charge, null, 200)]
    [InlineData(RequestCompletion.NotServed, CostOnFailure.Charge, 30L, 0)]
    public async Task Without_usage_a_request_is_charged_by_its_completion_and_the_rule(RequestCompletion completion, CostOnFailure onFailure, long? fallback, long charged)
    {
        var (engine, _) = Make(new RuleCost { Reserve = CostEstimate.Constant(200), Fallback = fallback, OnFailure = onFailure });
        var result = await engine.EvaluateAsync(Alice(0));
        await engine.SettleAsync(result, new CostReport(), completion);
        Assert.Equal(1000 - charged - 200, (await engine.EvaluateAsync(Alice(0))).Decision.Remaining);
    }

    [Fact]
    public async Task Reported_usage_is_charged_even_when_the_request_failed_and_a_result_settles_once()
    {
        var (engine, _) = Make(new RuleCost { Reserve = CostEstimate.Constant(200) });
        var result = await engine.EvaluateAsync(Alice(0));
        await engine.SettleAsync(result, new CostReport { TotalTokens = 70 }, RequestCompletion.Failed);
        await engine.SettleAsync(result, new CostReport { TotalTokens = 900 }, RequestCompletion.Completed);
        Assert.Equal(1000 - 70 - 200, (await engine.EvaluateAsync(Alice(0))).Decision.Remaining);
    }

    [Fact]
    public async Task A_later_tier_that_rejects_refunds_the_reservations_made_before_it()
    {
        var ceiling = new RateLimitRule("ceiling", RateLimitTier.Global, Limit.FixedWindow(Rate.Parse("1/h")));
        var (engine, _) = Make(new RuleCost { Reserve = CostEstimate.Constant(300) }, "1000/d", ceiling);
        Assert.True((await engine.EvaluateAsync(Alice(0))).IsAllowed);
        var rejected = await engine.EvaluateAsync(Alice(0));
        Assert.False(rejected.IsAllowed);
        Assert.False(rejected.HasReservations);

        // Only the first reservation is held: 700 remain.
        var probe = new RateLimitEngine(engine.Policy, engine.Store);
        Assert.Equal(400, (await probe.EvaluateAsync(Alice(0), RateLimitTier.User, RateLimitTier.User)).Decision.Remaining);
    }

    [Fact]
    public async Task Money_is_priced_in_micro_units_and_an_unknown_model_is_counted()
    {
        var prices = new PriceTable("usd", new Dictionary<string, ModelPrice> { ["small"] = new(150_000, 600_000) }, new ModelPrice(10_000_000, 30_000_000));
        var cost = new RuleCost { Unit = "usd", Measure = CostMeasure.Money, Prices = prices, Reserve = CostEstimate.FromField("max_tokens"), ModelField = "model" };
        using var meter = new MeterListener();
        long unknown = 0;
        meter.InstrumentPublished = (i, l) =>
        {
            if (i.Name == "floodgate.cost.unknown_models")
            {
                l.EnableMeasurementEvents(i);
            }
        };
        meter.SetMeasurementEventCallback<long>((_, v, _, _) => Interlocked.Add(ref unknown, v));
        meter.Start();

        // $1 a day, in micro-dollars. 1000 output tokens of "small" reserve 600 µ$.
        var (engine, _) = Make(cost, "1000000/d");
        var result = await engine.EvaluateAsync(Alice(1000));
        Assert.Equal(1_000_000 - 600, result.Decision.Remaining);

        // 2000 in, 500 out of "small": 300 + 300 = 600 µ$, no change; then a model the table does not know.
        await engine.SettleAsync(result, new CostReport { InputTokens = 2000, OutputTokens = 500, Model = "small" }, RequestCompletion.Completed);
        var second = await engine.EvaluateAsync(Alice(1000));
        Assert.Equal(1_000_000 - 1200, second.Decision.Remaining);
        await engine.SettleAsync(second, new CostReport { InputTokens = 1, OutputTokens = 1, Model = "huge" }, RequestCompletion.Completed);
        Assert.Equal(1_000_000 - 600 - 40, (await engine.EvaluateAsync(Alice(0))).Decision.Remaining);
        Assert.Equal(1, Interlocked.Read(ref unknown));
    }

    [Fact]
    public void Prices_round_up_to_a_whole_micro_unit_and_never_overflow()
    {
        var prices = new PriceTable("usd", new Dictionary<string, ModelPrice>(), new ModelPrice(2_500_000, 10_000_000));
        Assert.Equal(3, prices.Cost(null, 1, 0, out var known));
        Assert.False(known);
        Assert.Equal(2_500_000 + 10_000_000, prices.Cost("x", 1_000_000, 1_000_000, out _));
        Assert.Equal(long.MaxValue, prices.Cost("x", long.MaxValue, long.MaxValue, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PriceTable("usd", new Dictionary<string, ModelPrice>(), new ModelPrice(-1, 0)));
    }

    [Fact]
    public void Estimates_read_headers_and_fields_and_fall_back_when_absent_or_not_a_count()
    {
        var request = new RequestContext
        {
            Headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["x-estimate"] = "40", ["x-bad"] = "-3" },
            Fields = new Dictionary<string, string> { ["max_tokens"] = "512", ["text"] = "hello" },
        };
        Assert.Equal(45, new RuleCost { Reserve = CostEstimate.FromHeader("X-Estimate", add: 5) }.Estimate(request));
        Assert.Equal(9, new RuleCost { Reserve = CostEstimate.FromHeader("x-bad", otherwise: 9) }.Estimate(request));
        Assert.Equal(9, new RuleCost { Reserve = CostEstimate.FromHeader("x-none", otherwise: 9) }.Estimate(request));
        Assert.Equal(612, new RuleCost { Reserve = CostEstimate.FromField("max_tokens", add: 100) }.Estimate(request));
        Assert.Equal(7, new RuleCost { Reserve = CostEstimate.FromField("text", otherwise: 7) }.Estimate(request));
        Assert.Equal(11, new RuleCost { Reserve = CostEstimate.Constant(11) }.Estimate(request));
    }

    [Fact]
    public void Each_measure_reads_its_own_figure()
    {
        var report = new CostReport { InputTokens = 10, OutputTokens = 5 };
        Assert.Equal(15, new RuleCost().Charge(report, out _));
        Assert.Equal(10, new RuleCost { Measure = CostMeasure.InputTokens }.Charge(report, out _));
        Assert.Equal(5, new RuleCost { Measure = CostMeasure.OutputTokens }.Charge(report, out _));
        Assert.Null(new RuleCost { Measure = CostMeasure.Reported }.Charge(report, out _));
        Assert.Equal(99, new RuleCost().Charge(new CostReport { TotalTokens = 99, InputTokens = 1 }, out _));
        Assert.Null(new RuleCost().Charge(new CostReport(), out _));
        Assert.Equal(4, new RuleCost { Measure = CostMeasure.Reported }.Charge(new CostReport { Units = 4 }, out _));
    }
}
