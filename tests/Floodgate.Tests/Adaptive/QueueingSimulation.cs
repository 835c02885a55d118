using Floodgate.Adaptive;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Tests.Adaptive;

/// <summary>
/// A closed loop of clients against a simulated upstream with <see cref="Capacity"/> workers, whose latency is
/// <c>Base × max(1, inFlight / Capacity)</c>, on a fake clock: each client sends, waits for the answer (or, refused,
/// backs off) and sends again. Events are run in time order; the clock is advanced to each, so nothing sleeps.
/// </summary>
internal sealed class QueueingSimulation(AdaptiveConcurrencyLimiter limiter, FakeTimeProvider time, int clients)
{
    private static readonly TimeSpan Backoff = TimeSpan.FromMilliseconds(5);
    private readonly PriorityQueue<(int Client, AdaptiveTicket? Ticket), DateTimeOffset> _events = new();
    private bool _started;
    private int _running;

    /// <summary>The upstream's latency when it is not saturated.</summary>
    public TimeSpan Base { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>How many requests the upstream serves at once before latency grows.</summary>
    public int Capacity { get; set; } = 10;

    /// <summary>Requests refused by the limiter so far.</summary>
    public long Refused { get; private set; }

    /// <summary>Requests answered so far.</summary>
    public long Answered { get; private set; }

    /// <summary>The most requests in flight at the upstream at once.</summary>
    public int PeakRunning { get; private set; }

    /// <summary>Runs the clients for <paramref name="duration"/> of simulated time.</summary>
    public void Run(TimeSpan duration)
    {
        if (!_started)
        {
            _started = true;
            for (var i = 0; i < clients; i++)
            {
                _events.Enqueue((i, null), time.GetUtcNow());
            }
        }

        var end = time.GetUtcNow() + duration;
        while (_events.TryPeek(out var next, out var at) && at <= end)
        {
            _events.Dequeue();
            if (at > time.GetUtcNow())
            {
                time.Advance(at - time.GetUtcNow());
            }

            if (next.Ticket is { } ticket)
            {
                _running--;
                Answered++;
                limiter.Complete(ticket, AdaptiveOutcome.Success);
                _events.Enqueue((next.Client, null), time.GetUtcNow());
            }
            else if (limiter.TryAcquire(out var admitted))
            {
                _running++;
                PeakRunning = Math.Max(PeakRunning, _running);
                var latency = Base * Math.Max(1.0, (double)_running / Capacity);
                _events.Enqueue((next.Client, admitted), time.GetUtcNow() + latency);
            }
            else
            {
                Refused++;
                _events.Enqueue((next.Client, null), time.GetUtcNow() + Backoff);
            }
        }

        if (end > time.GetUtcNow())
        {
            time.Advance(end - time.GetUtcNow());
        }
    }
}
