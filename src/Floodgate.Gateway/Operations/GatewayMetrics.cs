using System.Diagnostics;
using System.Diagnostics.Metrics;
using Floodgate.Stores;

namespace Floodgate.Gateway.Operations;

/// <summary>The gateway's own instruments, on the <c>Floodgate.Gateway</c> meter: proxy and store latency, policy and certificate reloads.</summary>
internal static class GatewayMetrics
{
    public const string MeterName = "Floodgate.Gateway";

    private static readonly Meter Meter = new(MeterName);

    public static readonly Histogram<double> ProxyDuration = Meter.CreateHistogram<double>(
        "floodgate.proxy.duration", "s", "Time to forward a request to the upstream and receive its response headers, by route and status.");

    public static readonly Counter<long> ProxyErrors = Meter.CreateCounter<long>(
        "floodgate.proxy.errors", "{request}", "Requests the proxy could not forward or complete (the upstream refused, timed out, reset), by route and error.");

    public static readonly Histogram<double> StoreDuration = Meter.CreateHistogram<double>(
        "floodgate.store.duration", "s", "Time a remote store (Redis) took to decide one tier's checks, by store kind; the in-process store is not timed.");

    public static readonly Counter<long> PolicyReloads = Meter.CreateCounter<long>(
        "floodgate.policy.reloads", "{reload}", "Policy reloads, by result (applied or refused).");

    /// <summary>
    /// Exports the reload counter's series at 0, once the admin port's exporter listens (a measurement made before is not
    /// seen): an alert on <c>increase()</c> then sees the first refused reload, which a series born at 1 would hide.
    /// </summary>
    public static void ExportReloadSeries()
    {
        PolicyReloads.Add(0, new KeyValuePair<string, object?>("result", "applied"));
        PolicyReloads.Add(0, new KeyValuePair<string, object?>("result", "refused"));
    }

    public static readonly Counter<long> CertificateReloads = Meter.CreateCounter<long>(
        "floodgate.tls.certificate.reloads", "{reload}", "Reloads of the proxy listener's TLS certificate after its files changed, by result (applied or refused).");
}

/// <summary>Measures how long the store takes to decide, without changing what it decides.</summary>
internal sealed class InstrumentedStore(IRateLimitStore inner, string kind) : IRateLimitStore, IPermitReleaseNotifier
{
    private readonly KeyValuePair<string, object?> _tag = new("store", kind);

    // The inner store's release notices (Redis), so that concurrency queues hear other replicas' releases through it.
    public event Action<Floodgate.Keys.StoreKey>? PermitReleased
    {
        add
        {
            if (inner is IPermitReleaseNotifier notifier)
            {
                notifier.PermitReleased += value;
            }
        }

        remove
        {
            if (inner is IPermitReleaseNotifier notifier)
            {
                notifier.PermitReleased -= value;
            }
        }
    }

    public IRateLimitStore Inner => inner;

    public ValueTask DecideAsync(ReadOnlyMemory<RateLimitCheck> checks, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        var start = Stopwatch.GetTimestamp();
        var pending = inner.DecideAsync(checks, outcomes, cancellationToken);
        if (pending.IsCompletedSuccessfully)
        {
            pending.GetAwaiter().GetResult();
            GatewayMetrics.StoreDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, _tag);
            return default;
        }

        return AwaitAsync(pending, start);
    }

    // Forwarded, not left to the interface's default: that would split one round trip per request into one per tier.
    public ValueTask<int> DecideStagesAsync(ReadOnlyMemory<RateLimitCheck> checks, ReadOnlyMemory<int> stageEnds, Memory<StoreOutcome> outcomes, CancellationToken cancellationToken = default)
    {
        var start = Stopwatch.GetTimestamp();
        var pending = inner.DecideStagesAsync(checks, stageEnds, outcomes, cancellationToken);
        if (pending.IsCompletedSuccessfully)
        {
            GatewayMetrics.StoreDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, _tag);
            return pending;
        }

        return AwaitStagesAsync(pending, start);
    }

    public bool TryDecide(ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
    {
        var start = Stopwatch.GetTimestamp();
        var decided = inner.TryDecide(checks, outcomes);
        if (decided)
        {
            GatewayMetrics.StoreDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, _tag);
        }

        return decided;
    }

    public ValueTask ReleaseAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        inner.ReleaseAsync(check, leaseId, cancellationToken);

    // Forwarded, not left to the interface's default, which renews nothing: long requests would lose their permits.
    public ValueTask<LeaseRenewal> RenewAsync(RateLimitCheck check, long leaseId, CancellationToken cancellationToken = default) =>
        inner.RenewAsync(check, leaseId, cancellationToken);

    // Forwarded too: the default settles nothing, and every reservation would stand as the cost.
    public ValueTask<CostSettlement> SettleAsync(RateLimitCheck check, long delta, CancellationToken cancellationToken = default) =>
        inner.SettleAsync(check, delta, cancellationToken);

    private async ValueTask AwaitAsync(ValueTask pending, long start)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        finally
        {
            GatewayMetrics.StoreDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, _tag);
        }
    }

    private async ValueTask<int> AwaitStagesAsync(ValueTask<int> pending, long start)
    {
        try
        {
            return await pending.ConfigureAwait(false);
        }
        finally
        {
            GatewayMetrics.StoreDuration.Record(Stopwatch.GetElapsedTime(start).TotalSeconds, _tag);
        }
    }
}
