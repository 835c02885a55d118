using System.Diagnostics.Metrics;
using Floodgate.Engine;

namespace Floodgate.Gateway.Dashboard;

/// <summary>
/// Decisions per second by tier and outcome over the last <see cref="Seconds"/> seconds: a fixed ring of per-second
/// counters fed by a <see cref="MeterListener"/> on the engine's <c>floodgate.decisions</c> counter. Its memory is fixed;
/// a decision costs one interlocked increment, without allocating.
/// </summary>
internal sealed class DecisionRates : IDisposable
{
    /// <summary>How many seconds the ring holds.</summary>
    public const int Seconds = 300;

    private static readonly string[] Tiers = ["edge", "user", "service", "global"];
    private static readonly string[] Outcomes = ["allowed", "rejected", "shadow_rejected"];
    private static readonly int Series = Tiers.Length * Outcomes.Length;

    private readonly TimeProvider _time;
    private readonly long[] _stamps = new long[Seconds];
    private readonly long[] _counts = new long[Seconds * Series];
    private readonly Lock _resetLock = new();
    private readonly MeterListener _listener;

    public DecisionRates(TimeProvider time)
    {
        _time = time;
        Array.Fill(_stamps, -1);
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == RateLimitEngine.MeterName && instrument.Name == "floodgate.decisions")
                {
                    listener.EnableMeasurementEvents(instrument, this);
                }
            },
        };
        _listener.SetMeasurementEventCallback<long>(static (_, value, tags, state) => ((DecisionRates)state!).OnDecision(value, tags));
        _listener.Start();
    }

    /// <summary>Counts <paramref name="value"/> decisions of <paramref name="tier"/> with <paramref name="outcome"/> now.</summary>
    public void Record(string tier, string outcome, long value)
    {
        var t = Array.IndexOf(Tiers, tier);
        var o = Array.IndexOf(Outcomes, outcome);
        if (t < 0 || o < 0)
        {
            return;
        }

        var second = _time.GetUtcNow().ToUnixTimeSeconds();
        var slot = (int)(second % Seconds);
        if (Volatile.Read(ref _stamps[slot]) != second)
        {
            Reset(slot, second);
        }

        Interlocked.Add(ref _counts[(slot * Series) + (t * Outcomes.Length) + o], value);
    }

    /// <summary>The last <paramref name="seconds"/> whole and current seconds, oldest first, as one series per tier and outcome seen.</summary>
    public DecisionRateSnapshot Snapshot(int seconds)
    {
        seconds = Math.Clamp(seconds, 1, Seconds);
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        var series = new List<DecisionRateSeries>();
        for (var t = 0; t < Tiers.Length; t++)
        {
            for (var o = 0; o < Outcomes.Length; o++)
            {
                var values = new long[seconds];
                long total = 0;
                for (var i = 0; i < seconds; i++)
                {
                    var second = now - seconds + 1 + i;
                    var slot = (int)(second % Seconds);
                    if (Volatile.Read(ref _stamps[slot]) == second)
                    {
                        values[i] = Interlocked.Read(ref _counts[(slot * Series) + (t * Outcomes.Length) + o]);
                        total += values[i];
                    }
                }

                if (total > 0)
                {
                    series.Add(new DecisionRateSeries(Tiers[t], Outcomes[o], total, values));
                }
            }
        }

        return new DecisionRateSnapshot(now - seconds + 1, seconds, series);
    }

    public void Dispose() => _listener.Dispose();

    private void OnDecision(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        string? tier = null;
        string? outcome = null;
        foreach (var tag in tags)
        {
            if (tag.Key == "tier")
            {
                tier = tag.Value as string;
            }
            else if (tag.Key == "outcome")
            {
                outcome = tag.Value as string;
            }
        }

        if (tier is not null && outcome is not null)
        {
            Record(tier, outcome, value);
        }
    }

    // Once a second per slot: clears what the slot held a ring's length ago.
    private void Reset(int slot, long second)
    {
        lock (_resetLock)
        {
            if (_stamps[slot] == second)
            {
                return;
            }

            Array.Clear(_counts, slot * Series, Series);
            Volatile.Write(ref _stamps[slot], second);
        }
    }
}

/// <summary>Decisions per second, one series per tier and outcome that had any.</summary>
/// <param name="Start">The first second, in Unix seconds.</param>
/// <param name="Seconds">How many seconds each series holds, oldest first; the last is the current, partial second.</param>
/// <param name="Series">The series.</param>
internal sealed record DecisionRateSnapshot(long Start, int Seconds, IReadOnlyList<DecisionRateSeries> Series);

/// <summary>Decisions of one tier with one outcome, per second.</summary>
/// <param name="Tier">edge, user, service or global.</param>
/// <param name="Outcome">allowed, rejected or shadow_rejected.</param>
/// <param name="Total">Their sum over the window.</param>
/// <param name="PerSecond">One count per second, oldest first.</param>
internal sealed record DecisionRateSeries(string Tier, string Outcome, long Total, long[] PerSecond);
