using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Floodgate.Events;
using Floodgate.Gateway.Operations;
using Floodgate.Logging;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Events;

/// <summary>
/// Threshold events, from a crossing on the decision path to the log, the metric, the ledger and the webhooks. The
/// decision path only enqueues (<see cref="OnCrossed"/>: a bounded channel's <c>TryWrite</c>); one worker records each
/// crossing in the ledger (the store's dedup: once per subject, rule, threshold and period on every replica together)
/// and, when it is the first, logs it, counts it and hands it to each webhook's own bounded queue. A slow or dead
/// receiver fills only its queue: what does not fit is dropped and counted, and no request ever waits.
/// </summary>
internal sealed partial class ThresholdEvents : IThresholdObserver, IAsyncDisposable
{
    private static readonly Meter Meter = new(GatewayMetrics.MeterName);
    private static readonly Counter<long> Raised = Meter.CreateCounter<long>("floodgate.thresholds.raised", "{event}", "Threshold events raised (once per subject, rule, threshold and period across replicas), by rule and threshold.");
    private static readonly Counter<long> Dropped = Meter.CreateCounter<long>("floodgate.events.dropped", "{event}", "Threshold events or deliveries dropped, by reason: queue_full, ledger (the store failed), retries_exhausted.");
    private static readonly Counter<long> Deliveries = Meter.CreateCounter<long>("floodgate.events.deliveries", "{delivery}", "Webhook delivery attempts, by outcome: delivered or failed.");

    private readonly Channel<ThresholdCrossing> _crossings;
    private readonly Func<IThresholdLedger> _ledger;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly HttpClient _http;
    private readonly Task _worker;
    private WebhookSender[] _senders = [];
    private long _dropped;

    public ThresholdEvents(ThresholdEventSettings settings, Func<IThresholdLedger> ledger, ILogger logger, TimeProvider time)
    {
        _ledger = ledger;
        _logger = logger;
        _time = time;
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = Timeout.InfiniteTimeSpan };
        _crossings = Channel.CreateBounded<ThresholdCrossing>(new BoundedChannelOptions(settings.QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        Apply(settings);
        _worker = Task.Run(RecordAsync);
    }

    /// <summary>Crossings and deliveries waiting, over every queue: never more than the queues' capacities.</summary>
    public int Queued => _crossings.Reader.Count + Volatile.Read(ref _senders).Sum(s => s.Queued);

    /// <summary>Events and deliveries dropped since start.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>Puts <paramref name="settings"/>' webhooks in force; the previous receivers' queues are delivered and closed.</summary>
    public void Apply(ThresholdEventSettings settings)
    {
        var next = settings.Webhooks.Select(w => new WebhookSender(w, settings, this)).ToArray();
        foreach (var previous in Interlocked.Exchange(ref _senders, next))
        {
            previous.Complete();
        }
    }

    /// <inheritdoc/>
    public void OnCrossed(ThresholdCrossing crossing)
    {
        if (!_crossings.Writer.TryWrite(crossing))
        {
            Drop("queue_full");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _crossings.Writer.TryComplete();
        foreach (var sender in Volatile.Read(ref _senders))
        {
            sender.Complete();
        }

        await _worker.ConfigureAwait(false);
        foreach (var sender in Volatile.Read(ref _senders))
        {
            await sender.StopAsync().ConfigureAwait(false);
        }

        _http.Dispose();
    }

    private void Drop(string reason)
    {
        Interlocked.Increment(ref _dropped);
        Dropped.Add(1, new KeyValuePair<string, object?>("reason", reason));
    }

    private async Task RecordAsync()
    {
        await foreach (var crossing in _crossings.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            var raised = ThresholdEvent.Of(crossing);
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                if (!await _ledger().TryRecordAsync(raised, timeout.Token).ConfigureAwait(false))
                {
                    continue;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The store is unreachable: the event cannot be deduplicated with the other replicas, so it is not raised.
                Drop("ledger");
                LogLedgerFailed(_logger, raised.Rule, e);
                continue;
            }

            Raised.Add(1, new KeyValuePair<string, object?>("rule", raised.Rule), new KeyValuePair<string, object?>("threshold", raised.Threshold));
            LogRaised(_logger, raised.Rule, LogValues.Escape(raised.Subject)!, raised.Plan ?? "(default)", raised.Threshold, raised.Used, raised.Limit, raised.PeriodStart, raised.PeriodEnd, raised.Id);
            foreach (var sender in Volatile.Read(ref _senders))
            {
                sender.Enqueue(raised);
            }
        }
    }

    [LoggerMessage(1, LogLevel.Information, "Threshold {Threshold}% of rule {Rule} reached by {Subject} (plan {Plan}): used {Used} of {Limit} in the period {PeriodStart:O} to {PeriodEnd:O} (event {EventId})", EventName = "ThresholdReached")]
    private static partial void LogRaised(ILogger logger, string rule, string subject, string plan, int threshold, long used, long limit, DateTimeOffset periodStart, DateTimeOffset periodEnd, string eventId);

    [LoggerMessage(2, LogLevel.Warning, "A threshold event of rule {Rule} could not be recorded in the store and is not raised")]
    private static partial void LogLedgerFailed(ILogger logger, string rule, Exception exception);

    [LoggerMessage(3, LogLevel.Warning, "A threshold event could not be delivered to {Url} after {Attempts} attempts and is dropped: {Reason}")]
    private static partial void LogUndelivered(ILogger logger, Uri url, int attempts, string reason);
}
