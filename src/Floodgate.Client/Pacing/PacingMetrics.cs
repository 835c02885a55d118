using System.Diagnostics.Metrics;

namespace Floodgate.Client.Pacing;

/// <summary>
/// The <c>Floodgate.Client</c> meter: waits (and why), the time spent waiting, and the rejections seen. Every instrument
/// is tagged with the client's name.
/// </summary>
internal sealed class PacingMetrics
{
    /// <summary>The meter's name, to enable in OpenTelemetry (<c>AddMeter("Floodgate.Client")</c>).</summary>
    public const string MeterName = "Floodgate.Client";

    private readonly Counter<long> _waits;
    private readonly Histogram<double> _waited;
    private readonly Counter<long> _rejections;

    public PacingMetrics(IMeterFactory? factory)
    {
        var meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _waits = meter.CreateCounter<long>("floodgate.client.waits", "{wait}", "Requests that waited before being sent, by reason: pace (a paced slot, or a rejection's wait), probe (the answer that tells the limit), permit (a concurrency permit), retry (before sending a rejected request again).");
        _waited = meter.CreateHistogram<double>("floodgate.client.wait.duration", "s", "How long requests waited before being sent, by reason.");
        _rejections = meter.CreateCounter<long>("floodgate.client.rejections", "{response}", "429 and 503 answers seen, by status and whether the request was sent again.");
    }

    public void Waited(string client, string reason, TimeSpan waited)
    {
        var clientTag = new KeyValuePair<string, object?>("client", client);
        var reasonTag = new KeyValuePair<string, object?>("reason", reason);
        _waits.Add(1, clientTag, reasonTag);
        _waited.Record(waited.TotalSeconds, clientTag, reasonTag);
    }

    public void Rejected(string client, int status, bool retried) =>
        _rejections.Add(1, new KeyValuePair<string, object?>("client", client), new KeyValuePair<string, object?>("status", status), new KeyValuePair<string, object?>("retried", retried));
}
