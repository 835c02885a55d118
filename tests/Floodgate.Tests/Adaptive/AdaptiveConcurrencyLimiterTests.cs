using Floodgate.Adaptive;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Adaptive;

public sealed class AdaptiveConcurrencyLimiterTests
{
    private static readonly AdaptiveConcurrencyOptions Enforced = new()
    {
        Mode = AdaptiveMode.Enforce,
        MinLimit = 2,
        MaxLimit = 200,
        InitialLimit = 20,
        SampleWindow = TimeSpan.FromMilliseconds(100),
        MinRttInterval = TimeSpan.FromSeconds(10),
        MinRttSamples = 20,
        MinRttJitter = 0,
    };

    private static FakeTimeProvider NewTime() => new(new DateTimeOffset(2026, 12, 8, 0, 0, 0, TimeSpan.Zero));

    [Theory]
    [InlineData(4)]
    [InlineData(10)]
    [InlineData(40)]
    public void Converges_near_the_capacity_of_the_upstream(int capacity)
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced, time);
        var simulation = new QueueingSimulation(limiter, time, clients: capacity * 5) { Capacity = capacity };

        simulation.Run(TimeSpan.FromSeconds(30));

        // The fixed point is 1.25 c + sqrt(1.25 c) (the buffer and the headroom): above c, well under 3c.
        Assert.NotNull(limiter.MinRtt);
        Assert.InRange(limiter.MinRtt.Value.TotalMilliseconds, 9.9, 10.1);
        Assert.InRange(limiter.Limit, capacity, 2 * capacity + 2);
        Assert.True(simulation.Refused > 0, "clients beyond the limit are refused");
    }

    [Fact]
    public void Drops_when_the_upstream_loses_capacity_and_recovers_when_it_comes_back()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced, time);
        var simulation = new QueueingSimulation(limiter, time, clients: 60) { Capacity = 20 };
        simulation.Run(TimeSpan.FromSeconds(20));
        var healthy = limiter.Limit;
        Assert.InRange(healthy, 20, 42);

        simulation.Capacity = 5;
        simulation.Run(TimeSpan.FromSeconds(20));
        var degraded = limiter.Limit;
        Assert.InRange(degraded, 5, 12);

        simulation.Capacity = 20;
        simulation.Run(TimeSpan.FromSeconds(20));
        Assert.InRange(limiter.Limit, 20, 42);
    }

    [Fact]
    public void Drops_when_latency_rises_then_the_min_rtt_reprobe_learns_the_new_baseline()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced, time);
        var simulation = new QueueingSimulation(limiter, time, clients: 50) { Capacity = 10 };
        simulation.Run(TimeSpan.FromSeconds(8));
        var before = limiter.Limit;

        // Each request takes three times as long: the gradient falls to its floor until the baseline is measured again.
        simulation.Base = TimeSpan.FromMilliseconds(30);
        simulation.Run(TimeSpan.FromSeconds(1));
        Assert.True(limiter.Limit < before, $"the limit should drop when latency rises ({before} -> {limiter.Limit})");
        Assert.InRange(limiter.MinRtt!.Value.TotalMilliseconds, 9.9, 10.1);

        // Past min_rtt_interval, the limit is pinned to min_limit while the new baseline is measured, then recovers.
        var pinned = false;
        for (var i = 0; i < 200 && !pinned; i++)
        {
            simulation.Run(TimeSpan.FromMilliseconds(50));
            pinned = limiter.EffectiveLimit == Enforced.MinLimit;
        }

        Assert.True(pinned, "the limit is pinned low while the minimum RTT is measured again");
        simulation.Run(TimeSpan.FromSeconds(10));
        Assert.InRange(limiter.MinRtt!.Value.TotalMilliseconds, 29.9, 30.1);
        Assert.InRange(limiter.Limit, 10, 22);
    }

    [Fact]
    public void Stays_within_its_bounds()
    {
        var time = NewTime();
        var capped = new AdaptiveConcurrencyLimiter("capped", Enforced with { MaxLimit = 8, InitialLimit = 8 }, time);
        var roomy = new QueueingSimulation(capped, time, clients: 200) { Capacity = 100 };
        roomy.Run(TimeSpan.FromSeconds(10));
        Assert.Equal(8, capped.Limit);
        Assert.True(roomy.PeakRunning <= 8, $"never more than max_limit in flight ({roomy.PeakRunning})");

        // The baseline is learned at 10 ms, then every request takes 20 times as long: the gradient stays at its floor
        // of 0.5, and the limit would fall below min_limit but stops there.
        var floored = new AdaptiveConcurrencyLimiter("floored", Enforced with { MinLimit = 3, MinRttInterval = TimeSpan.FromMinutes(1) }, time);
        var crowded = new QueueingSimulation(floored, time, clients: 50) { Capacity = 10 };
        crowded.Run(TimeSpan.FromSeconds(5));
        crowded.Base = TimeSpan.FromMilliseconds(200);
        crowded.Run(TimeSpan.FromSeconds(20));
        Assert.Equal(3, floored.Limit);
        Assert.InRange(floored.MinRtt!.Value.TotalMilliseconds, 9.9, 10.1);
    }

    [Theory]
    [InlineData(1.0, 16)]
    [InlineData(0.5, 18)]
    [InlineData(0.25, 19)]
    public void Moves_by_the_smoothing_share_of_the_gradient_step(double smoothing, int expected)
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced with { Smoothing = smoothing, MinRttSamples = 5 }, time);
        MeasureMinRtt(limiter, time, TimeSpan.FromMilliseconds(10), 5);
        Assert.Equal(20, limiter.EffectiveLimit);

        // 20 in flight, answered in 20 ms once the window is over: gradient 10 × 1.25 / 20 = 0.625, so the target is
        // 12.5 + sqrt(12.5) = 16.04, and the limit moves that far from 20 by the smoothing share.
        time.Advance(TimeSpan.FromMilliseconds(80));
        var tickets = Acquire(limiter, 20);
        time.Advance(TimeSpan.FromMilliseconds(20));
        limiter.Complete(tickets[0], AdaptiveOutcome.Success);

        Assert.Equal(expected, limiter.Limit);
        Assert.Equal(expected, limiter.EffectiveLimit);
        Assert.Equal(20.0, limiter.Snapshot().SampleRttMilliseconds);
    }

    [Fact]
    public void Pins_the_limit_to_the_minimum_while_measuring_and_counts_only_requests_at_that_concurrency()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced with { MinRttSamples = 3 }, time);
        Assert.Equal(2, limiter.EffectiveLimit);
        Assert.True(limiter.TryAcquire(out var first));
        Assert.True(limiter.TryAcquire(out var second));
        Assert.False(limiter.TryAcquire(out _));
        Assert.Equal(1, limiter.Rejected);

        time.Advance(TimeSpan.FromMilliseconds(7));
        limiter.Complete(first, AdaptiveOutcome.Success);
        limiter.Complete(second, AdaptiveOutcome.Success);
        Assert.True(limiter.Snapshot().MeasuringMinRtt);

        MeasureMinRtt(limiter, time, TimeSpan.FromMilliseconds(7), 1);
        Assert.False(limiter.Snapshot().MeasuringMinRtt);
        Assert.Equal(7.0, limiter.MinRtt!.Value.TotalMilliseconds);
        Assert.Equal(20, limiter.EffectiveLimit);
    }

    [Fact]
    public void A_request_the_client_abandoned_leaves_without_a_sample()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced with { MinRttSamples = 1 }, time);
        Assert.True(limiter.TryAcquire(out var ticket));
        Assert.Equal(1, limiter.InFlight);
        time.Advance(TimeSpan.FromSeconds(5));
        limiter.Complete(ticket, AdaptiveOutcome.Ignored);
        Assert.Equal(0, limiter.InFlight);
        Assert.Null(limiter.MinRtt);
    }

    [Fact]
    public void Shadow_mode_never_refuses_and_still_learns()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced with { Mode = AdaptiveMode.Shadow, InitialLimit = 100 }, time);
        var simulation = new QueueingSimulation(limiter, time, clients: 40) { Capacity = 10 };
        simulation.Run(TimeSpan.FromSeconds(20));

        Assert.Equal(0, simulation.Refused);
        Assert.Equal(40, simulation.PeakRunning);
        Assert.True(limiter.Rejected > 0, "the requests enforcing would have refused are counted");
        Assert.True(limiter.Limit < 100, $"the learned limit moved from 100 ({limiter.Limit})");
        Assert.Equal("shadow", limiter.Snapshot().Mode);
    }

    [Fact]
    public void Aimd_backs_off_on_errors_and_adds_one_per_window_otherwise()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced with { Algorithm = AdaptiveAlgorithm.Aimd, Smoothing = 1, MinRttSamples = 1 }, time);
        MeasureMinRtt(limiter, time, TimeSpan.FromMilliseconds(10), 1);

        time.Advance(TimeSpan.FromMilliseconds(100));
        var tickets = Acquire(limiter, 20);
        limiter.Complete(tickets[0], AdaptiveOutcome.Error);
        Assert.Equal(18, limiter.Limit);

        // The first answer after the window closes it: it was sent with 20 in flight, more than half the limit, so the
        // limit is in use and grows by one.
        time.Advance(TimeSpan.FromMilliseconds(100));
        for (var i = 19; i >= 1; i--)
        {
            limiter.Complete(tickets[i], AdaptiveOutcome.Success);
        }

        Assert.Equal(19, limiter.Limit);
    }

    [Fact]
    public void A_latency_beyond_the_timeout_counts_as_an_error()
    {
        var time = NewTime();
        var options = Enforced with { Algorithm = AdaptiveAlgorithm.Aimd, Smoothing = 1, MinRttSamples = 1, Timeout = TimeSpan.FromMilliseconds(50) };
        var limiter = new AdaptiveConcurrencyLimiter("api", options, time);
        MeasureMinRtt(limiter, time, TimeSpan.FromMilliseconds(10), 1);
        var tickets = Acquire(limiter, 20);
        time.Advance(TimeSpan.FromMilliseconds(100));
        limiter.Complete(tickets[0], AdaptiveOutcome.Success);
        Assert.Equal(18, limiter.Limit);
    }

    [Theory]
    [InlineData("min_limit")]
    [InlineData("initial_limit")]
    [InlineData("smoothing")]
    [InlineData("sample_window")]
    [InlineData("min_rtt_interval")]
    public void Invalid_settings_are_refused_naming_the_field(string field)
    {
        var bad = field switch
        {
            "min_limit" => Enforced with { MinLimit = 300 },
            "initial_limit" => Enforced with { InitialLimit = 1 },
            "smoothing" => Enforced with { Smoothing = 0 },
            "sample_window" => Enforced with { SampleWindow = TimeSpan.Zero },
            _ => Enforced with { MinRttInterval = TimeSpan.FromMilliseconds(10) },
        };
        var e = Assert.Throws<ArgumentException>(() => new AdaptiveConcurrencyRule("api", bad));
        Assert.Contains(field, e.Message, StringComparison.Ordinal);
        Assert.Contains("'api'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Entering_and_leaving_allocate_nothing()
    {
        var time = NewTime();
        var limiter = new AdaptiveConcurrencyLimiter("api", Enforced with { MinRttSamples = 5 }, time);
        MeasureMinRtt(limiter, time, TimeSpan.FromMilliseconds(1), 5);
        for (var i = 0; i < 100; i++)
        {
            Assert.True(limiter.TryAcquire(out var warm));
            time.Advance(TimeSpan.FromMilliseconds(1));
            limiter.Complete(warm, AdaptiveOutcome.Success);
        }

        // 10,000 requests, windows closing and the limit moving among them: no allocation. The least of three rounds, as
        // in EngineTests: a one-off allocation of the runtime's (a tier-up, a lazy static) shows in one round at most,
        // an allocation per request in all of them.
        var least = long.MaxValue;
        for (var round = 0; round < 3 && least > 0; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var admitted = 0;
            for (var i = 0; i < 10_000; i++)
            {
                if (limiter.TryAcquire(out var ticket))
                {
                    admitted++;
                    time.Advance(TimeSpan.FromMilliseconds(1));
                    limiter.Complete(ticket, AdaptiveOutcome.Success);
                }
            }

            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.Equal(10_000, admitted);
        }

        Assert.Equal(0, least);
        Assert.Equal(1.0, limiter.Snapshot().SampleRttMilliseconds);
    }

    private static void MeasureMinRtt(AdaptiveConcurrencyLimiter limiter, FakeTimeProvider time, TimeSpan latency, int samples)
    {
        for (var i = 0; i < samples; i++)
        {
            Assert.True(limiter.TryAcquire(out var ticket));
            time.Advance(latency);
            limiter.Complete(ticket, AdaptiveOutcome.Success);
        }
    }

    private static AdaptiveTicket[] Acquire(AdaptiveConcurrencyLimiter limiter, int count)
    {
        var tickets = new AdaptiveTicket[count];
        for (var i = 0; i < count; i++)
        {
            Assert.True(limiter.TryAcquire(out tickets[i]), $"request {i + 1} of {count} admitted");
        }

        return tickets;
    }
}
