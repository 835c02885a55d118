using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Floodgate.Envoy.Tests;

/// <summary>Sums the Floodgate.Envoy counters of one server's meter factory, by instrument, domain and rule.</summary>
internal sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Instrument, string Rule), long> _sums = new();

    public MetricsRecorder(object meterScope)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == EnvoyRateLimitMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, meterScope))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var rule = string.Empty;
            foreach (var tag in tags)
            {
                if (tag.Key is "rule" or "outcome")
                {
                    rule = tag.Value as string ?? string.Empty;
                }
            }

            _sums.AddOrUpdate((instrument.Name, rule), value, (_, sum) => sum + value);
        });
        _listener.Start();
    }

    public long Sum(string instrument, string rule) => _sums.GetValueOrDefault(("floodgate.envoy." + instrument, rule));

    public void Dispose() => _listener.Dispose();
}
