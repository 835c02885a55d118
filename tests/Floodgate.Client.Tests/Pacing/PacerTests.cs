using Floodgate.Client.Fields;
using Floodgate.Client.Pacing;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Client.Tests.Pacing;

public sealed class PacerTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));

    internal static LimitSignal Rate(long quota, long window, long remaining, double reset, string partition = "p") =>
        new() { Kind = SignalKind.Rate, Quota = quota, Window = window, Remaining = remaining, Reset = reset, Partition = partition };

    private static LimitSignal Concurrency(long permits, long remaining) =>
        new() { Kind = SignalKind.Concurrency, Quota = permits, Window = -1, Remaining = remaining, Reset = 0, Partition = "c" };

    private static LimitSignal Nothing() => new() { Kind = SignalKind.None, Quota = -1, Window = -1, Reset = -1 };

    /// <summary>A pacer that has learned <paramref name="signal"/> from its probe's answer.</summary>
    private Pacer Learned(LimitSignal signal)
    {
        var pacer = new Pacer("p", _time);
        var probe = pacer.Enter();
        Assert.True(probe.IsNow);
        Assert.Equal(PacerHold.Probe, probe.Ticket.Hold);
        pacer.Observe(probe.Ticket, signal);
        return pacer;
    }

    /// <summary>
    /// Enters <paramref name="count"/> requests at once and steps the fake clock by <paramref name="step"/> until all have
    /// gone or <paramref name="until"/> has passed; the seconds (from the start) at which each went, in entry order.
    /// </summary>
    private double[] SendTimes(Pacer pacer, int count, double step = 0.01, double until = 120)
    {
        var start = _time.GetTimestamp();
        var times = new double[count];
        var admissions = new Admission[count];
        for (var i = 0; i < count; i++)
        {
            admissions[i] = pacer.Enter();
            times[i] = admissions[i].IsNow ? 0 : double.NaN;
        }

        for (var elapsed = 0.0; elapsed <= until && times.Any(double.IsNaN); elapsed += step)
        {
            for (var i = 0; i < count; i++)
            {
                if (double.IsNaN(times[i]) && admissions[i].Waiter!.Task.IsCompletedSuccessfully)
                {
                    times[i] = Math.Round(_time.GetElapsedTime(start).TotalSeconds, 2);
                }
            }

            _time.Advance(TimeSpan.FromSeconds(step));
        }

        return times;
    }

    [Fact]
    public void Before_its_first_answer_one_request_probes_and_the_others_queue_for_its_answer()
    {
        var pacer = new Pacer("p", _time);
        var probe = pacer.Enter();
        var second = pacer.Enter();
        var third = pacer.Enter();
        Assert.True(probe.IsNow);
        Assert.False(second.IsNow);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.False(second.Waiter!.Task.IsCompleted);

        pacer.Observe(probe.Ticket, Rate(10, 1, 9, 1));
        Assert.True(second.Waiter.Task.IsCompletedSuccessfully);
        Assert.False(third.Waiter!.Task.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(third.Waiter.Task.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_failed_probe_lets_the_next_in_the_queue_probe()
    {
        var pacer = new Pacer("p", _time);
        var probe = pacer.Enter();
        var waiting = pacer.Enter();
        var after = pacer.Enter();
        pacer.Abandon(probe.Ticket);
        Assert.Equal(PacerHold.Probe, (await waiting.Waiter!.Task).Hold);
        Assert.False(after.Waiter!.Task.IsCompleted);
    }

    [Fact]
    public void A_server_that_sends_no_fields_is_not_paced()
    {
        var pacer = Learned(Nothing());
        for (var i = 0; i < 100; i++)
        {
            Assert.True(pacer.Enter().IsNow);
        }
    }

    [Fact]
    public void Requests_go_in_turn_no_slower_than_the_policy_rate_when_the_reset_is_rounded_up()
    {
        // 10/s: what remains (9 over a reset rounded up to 1 s) would space them 0.111 s apart; q per w says 0.1 s.
        var pacer = Learned(Rate(10, 1, 9, 1));
        Assert.Equal([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0], SendTimes(pacer, 10));
    }

    [Fact]
    public void What_remains_is_spread_until_the_reset_then_the_window_starts_again()
    {
        // 10 per minute, 5 left for the next 10 s: one every 2 s, then the new window's 10 at 6 s apart.
        var pacer = Learned(Rate(10, 60, 5, 10));
        Assert.Equal([0, 2, 4, 6, 8, 10, 16, 22], SendTimes(pacer, 8, step: 0.5));
    }

    [Fact]
    public void Without_a_policy_what_remains_is_spread_until_the_reset_and_then_one_request_probes()
    {
        // X-RateLimit-Remaining: 3, X-RateLimit-Reset: 9, no limit or window.
        var pacer = Learned(new LimitSignal { Kind = SignalKind.Rate, Quota = -1, Window = -1, Remaining = 3, Reset = 9 });
        var times = SendTimes(pacer, 5, step: 0.5, until: 20);
        Assert.Equal([0, 3, 6, 9], times[..4]);
        Assert.True(double.IsNaN(times[4])); // the fourth went as a probe: the fifth waits for its answer
    }

    [Fact]
    public void Nothing_remaining_waits_for_the_reset()
    {
        var pacer = Learned(Rate(5, 60, 0, 42));
        Assert.Equal([42], SendTimes(pacer, 1, step: 1));
    }

    [Fact]
    public void Slots_a_late_timer_missed_while_callers_waited_go_at_once_and_keep_the_schedule()
    {
        // 10/s with plenty left. The timer due at 0.1 s fires at 0.55 s (a busy thread pool): the slots of 0.1 to 0.5 s
        // were owed to the callers waiting, and go at once; the next is at 0.6 s, as planned.
        var pacer = Learned(Rate(100, 10, 90, 10));
        Assert.True(pacer.Enter().IsNow);
        var queued = Enumerable.Range(0, 19).Select(_ => pacer.Enter()).ToArray();
        _time.Advance(TimeSpan.FromSeconds(0.55));
        Assert.Equal(5, queued.Count(a => a.Waiter!.Task.IsCompletedSuccessfully));
        Assert.Equal(TimeSpan.FromSeconds(0.05), pacer.Snapshot().NextIn);
        _time.Advance(TimeSpan.FromSeconds(0.05));
        Assert.Equal(6, queued.Count(a => a.Waiter!.Task.IsCompletedSuccessfully));

        // At most what remains goes at once, and never more than MaxCatchUp.
        var late = Learned(Rate(100, 10, 3, 10));
        Assert.True(late.Enter().IsNow);
        var waiting = Enumerable.Range(0, 5).Select(_ => late.Enter()).ToArray();
        _time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(2, waiting.Count(a => a.Waiter!.Task.IsCompletedSuccessfully));
    }

    [Fact]
    public void Callers_that_waited_for_the_probe_get_the_slots_of_its_round_trip_less_room_for_what_is_in_flight()
    {
        // 10/s, 9 left. The probe's answer took 0.35 s: the 3 slots of that wait go at once (9 remain, less 4 for the
        // requests a round trip that long keeps in flight, less the one the schedule goes on with), the next 0.1 s later.
        var pacer = new Pacer("p", _time);
        var probe = pacer.Enter();
        var queued = Enumerable.Range(0, 20).Select(_ => pacer.Enter()).ToArray();
        _time.Advance(TimeSpan.FromSeconds(0.35));
        pacer.Observe(probe.Ticket, Rate(10, 1, 9, 1));
        Assert.Equal(3, queued.Count(a => a.Waiter!.Task.IsCompletedSuccessfully));
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(4, queued.Count(a => a.Waiter!.Task.IsCompletedSuccessfully));

        // A round trip of 0.65 s missed 6 slots, but 7 would be in flight: only 1 goes at once.
        var slow = new Pacer("p", _time);
        var slowProbe = slow.Enter();
        var behind = Enumerable.Range(0, 20).Select(_ => slow.Enter()).ToArray();
        _time.Advance(TimeSpan.FromSeconds(0.65));
        slow.Observe(slowProbe.Ticket, Rate(10, 1, 9, 1));
        Assert.Equal(1, behind.Count(a => a.Waiter!.Task.IsCompletedSuccessfully));
    }

    [Fact]
    public void Slots_nobody_waited_for_are_not_made_up_for()
    {
        // An idle pacer owes nothing: after 5 s without a request, the next goes at once and the one after a spacing later
        // (89 left over the 5 s to the reset when it went: 0.056 s).
        var pacer = Learned(Rate(100, 10, 90, 10));
        Assert.True(pacer.Enter().IsNow);
        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(pacer.Enter().IsNow);
        var next = pacer.Enter();
        Assert.False(next.IsNow);
        Assert.Equal(5.0 / 89, pacer.Snapshot().NextIn.TotalSeconds, 3);
    }

    [Fact]
    public void An_answer_counts_the_requests_sent_after_it_as_spent()
    {
        var pacer = Learned(Rate(100, 60, 100, 60));
        var first = pacer.Enter();
        _time.Advance(TimeSpan.FromSeconds(1));
        pacer.Enter();
        _time.Advance(TimeSpan.FromSeconds(1));
        pacer.Enter();

        // The first request's answer says 50 remain; the two sent after it will spend 2 of those.
        pacer.Observe(first.Ticket, Rate(100, 60, 50, 60));
        Assert.Equal(48, pacer.Snapshot().Remaining);
    }

    [Fact]
    public void An_overtaken_answer_does_not_take_back_a_newer_one()
    {
        var pacer = Learned(Rate(100, 60, 100, 60));
        var older = pacer.Enter();
        _time.Advance(TimeSpan.FromSeconds(1));
        var newer = pacer.Enter();
        pacer.Observe(newer.Ticket, Rate(100, 60, 10, 60));
        pacer.Observe(older.Ticket, Rate(100, 60, 11, 60));
        Assert.Equal(10, pacer.Snapshot().Remaining);
    }

    [Fact]
    public void A_restarted_server_is_followed_within_one_answer()
    {
        var pacer = Learned(Rate(10, 60, 1, 50));
        var last = pacer.Enter();
        Assert.True(last.IsNow);
        var queued = pacer.Enter();
        Assert.Equal(TimeSpan.FromSeconds(50), pacer.Snapshot().NextIn);

        // The server lost its counts: the answer to the last request says the window is full again (less that request).
        pacer.Observe(last.Ticket, Rate(10, 60, 9, 60));
        Assert.Equal(9, pacer.Snapshot().Remaining);
        Assert.Equal(TimeSpan.FromSeconds(6), pacer.Snapshot().NextIn); // q per w after the last request, not the old reset
        _time.Advance(TimeSpan.FromSeconds(6));
        Assert.True(queued.Waiter!.Task.IsCompletedSuccessfully);
    }

    [Fact]
    public void A_raised_limit_is_followed_within_one_answer()
    {
        var pacer = Learned(Rate(10, 1, 9, 1));
        var first = pacer.Enter();
        Assert.Equal(TimeSpan.FromSeconds(0.1), pacer.Snapshot().NextIn);

        pacer.Observe(first.Ticket, Rate(50, 1, 49, 1));
        var snapshot = pacer.Snapshot();
        Assert.Equal(50, snapshot.Quota);
        Assert.Equal(TimeSpan.FromSeconds(1), snapshot.Window);
        Assert.Equal(TimeSpan.FromSeconds(0.02), snapshot.NextIn);
    }

    [Fact]
    public async Task A_concurrency_limit_holds_a_permit_per_request_and_hands_a_released_one_to_the_first_in_the_queue()
    {
        var pacer = Learned(Concurrency(2, 2));
        var a = pacer.Enter();
        var b = pacer.Enter();
        var c = pacer.Enter();
        var d = pacer.Enter();
        Assert.True(a.IsNow && b.IsNow);
        Assert.Equal(PacerHold.Permit, a.Ticket.Hold);
        Assert.False(c.IsNow || d.IsNow);

        pacer.Observe(a.Ticket, Concurrency(2, 0));
        var cTicket = await c.Waiter!.Task;
        Assert.Equal(PacerHold.Permit, cTicket.Hold);
        Assert.False(d.Waiter!.Task.IsCompleted);
        Assert.Equal(2, pacer.Snapshot().InFlight);

        // A waiter who gave up is skipped; the permit goes back to the pool.
        Assert.True(d.Waiter.TrySetCanceled());
        pacer.Abandon(b.Ticket);
        pacer.Abandon(cTicket);
        Assert.Equal(0, pacer.Snapshot().InFlight);
    }

    [Fact]
    public void A_raised_concurrency_limit_lets_more_go_at_once()
    {
        var pacer = Learned(Concurrency(1, 1));
        var a = pacer.Enter();
        var b = pacer.Enter();
        Assert.False(b.IsNow);
        pacer.Learn(Concurrency(3, 2));
        Assert.True(b.Waiter!.Task.IsCompletedSuccessfully);
        Assert.True(pacer.Enter().IsNow);
        Assert.False(pacer.Enter().IsNow);
        _ = a;
    }

    [Fact]
    public void A_rejection_stops_everyone_until_its_retry_after_then_one_request_probes()
    {
        var pacer = Learned(Rate(10, 1, 9, 1));
        pacer.Block(TimeSpan.FromSeconds(5));
        var times = SendTimes(pacer, 3, step: 0.5, until: 10);
        Assert.Equal(5, times[0]);
        Assert.True(double.IsNaN(times[1]) && double.IsNaN(times[2]));
    }

    [Fact]
    public async Task A_retired_pacer_sends_its_queue_and_later_callers_elsewhere()
    {
        var pacer = new Pacer(string.Empty, _time);
        pacer.Enter();
        var queued = pacer.Enter();
        pacer.Retire();
        Assert.Equal(PacerHold.Moved, (await queued.Waiter!.Task).Hold);
        Assert.Equal(PacerHold.Moved, pacer.Enter().Ticket.Hold);
    }
}
