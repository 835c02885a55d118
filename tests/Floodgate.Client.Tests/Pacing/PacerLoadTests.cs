using Floodgate.Client.Fields;
using Floodgate.Client.Pacing;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Client.Tests.Pacing;

/// <summary>
/// The pacer against a simulated gcra server (10/s, burst 10, as the gateway answers it) on a fake clock, with the
/// answers slow and the timers late, as on a loaded machine: 50 callers sharing the pacer never get a 429 and keep
/// close to the rate.
/// </summary>
public sealed class PacerLoadTests
{
    private const double Interval = 0.1;
    private const double Tolerance = 1.0;

    /// <summary>
    /// Runs 50 callers for <paramref name="seconds"/>, each sending again when its answer comes; answers take
    /// <paramref name="latency"/> seconds, and the clock moves in steps of <paramref name="step"/> (a timer fires up to a
    /// step late). Returns the requests answered within the run and those the server refused.
    /// </summary>
    private static (int Answered, int Refused) Run(double latency, double step, double seconds = 10)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
        var pacer = new Pacer("p", time);
        var tat = 0.0;
        var now = 0.0;
        var waiting = new List<Admission>();
        var inFlight = new List<(Ticket Ticket, long Remaining, double Reset, double At)>();
        int answered = 0, refused = 0;

        void Send(Ticket ticket)
        {
            // The server decides when the request arrives, half the latency after it was sent.
            var at = now + (latency / 2);
            var allowed = Math.Max(tat, at) + Interval - Tolerance <= at + 1e-9;
            if (allowed)
            {
                tat = Math.Max(tat, at) + Interval;
            }
            else
            {
                refused++;
            }

            var remaining = (long)Math.Floor(((at + Tolerance - tat) / Interval) + 1e-9);
            inFlight.Add((ticket, Math.Max(0, remaining), Math.Ceiling(Math.Max(0, tat - at) - 1e-9), now + latency));
        }

        void Enter()
        {
            var admission = pacer.Enter();
            if (admission.IsNow)
            {
                Send(admission.Ticket);
            }
            else
            {
                waiting.Add(admission);
            }
        }

        for (var i = 0; i < 50; i++)
        {
            Enter();
        }

        while (now < seconds)
        {
            time.Advance(TimeSpan.FromSeconds(step));
            now += step;
            foreach (var done in inFlight.Where(f => f.At <= now + 1e-9).ToList())
            {
                inFlight.Remove(done);
                answered++;
                pacer.Observe(done.Ticket, new LimitSignal { Kind = SignalKind.Rate, Quota = 10, Window = 1, Remaining = done.Remaining, Reset = done.Reset, Partition = "p" });
                Enter();
            }

            foreach (var turn in waiting.Where(w => w.Waiter!.Task.IsCompletedSuccessfully).ToList())
            {
                waiting.Remove(turn);
                Send(turn.Waiter!.Task.Result);
            }
        }

        return (answered, refused);
    }

    [Theory]
    [InlineData(0.005, 0.001)]
    [InlineData(0.1, 0.01)]
    [InlineData(0.3, 0.05)]
    [InlineData(0.5, 0.05)]
    public void Slow_answers_and_late_timers_cost_only_the_answers_still_in_flight_at_the_end(double latency, double step)
    {
        var (answered, refused) = Run(latency, step);
        Assert.Equal(0, refused);

        // Allowed: 10/s for 10 s. The answers of the last `latency` seconds are still in flight when the run ends; the
        // callers' wait for the probe's answer is made up from the burst, so at most a slot or two more is lost.
        var expected = 100 - (latency * 10);
        Assert.True(answered >= expected - 2, $"{answered} answered, {expected} expected");
    }

    [Theory]
    [InlineData(1.0, 0.05)]
    [InlineData(1.5, 0.25)]
    public void Answers_slower_than_the_burst_lasts_slow_the_pacer_down_but_never_past_the_limit(double latency, double step)
    {
        // With more requests in flight than the burst holds, every answer counts them as spent: the pacer cannot tell a
        // bucket that refills from a window that does not, and keeps to what the server said remains.
        var (answered, refused) = Run(latency, step);
        Assert.Equal(0, refused);
        Assert.InRange(answered, 30, 100);
    }
}
