using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Floodgate.Gateway.Tests.Costs;

/// <summary>Sums the engine's cost counters by instrument and rule, for rules named uniquely by one test.</summary>
internal sealed class CostMeter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Instrument, string Rule), long> _sums = new();

    public CostMeter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Floodgate" && instrument.Name.StartsWith("floodgate.cost.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "rule" && tag.Value is string rule)
                {
                    _sums.AddOrUpdate((instrument.Name["floodgate.cost.".Length..], rule), value, (_, sum) => sum + value);
                }
            }
        });
        _listener.Start();
    }

    /// <summary>The sum of <c>floodgate.cost.&lt;name&gt;</c> for <paramref name="rule"/>.</summary>
    public long Sum(string name, string rule) => _sums.TryGetValue((name, rule), out var sum) ? sum : 0;

    /// <summary>Waits, at most 10 s, until <paramref name="done"/> holds.</summary>
    public static async Task<bool> UntilAsync(Func<bool> done)
    {
        for (var i = 0; i < 200 && !done(); i++)
        {
            await Task.Delay(50);
        }

        return done();
    }

    public void Dispose() => _listener.Dispose();
}
