using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Floodgate.Envoy;

/// <summary>
/// The service's counters, named after the reference's statistics: per domain and rule, total_hits, over_limit,
/// near_limit, within_limit and shadow_mode, counted in hits.
/// </summary>
internal sealed class EnvoyRateLimitMetrics : IDisposable
{
    /// <summary>The meter's name, to enable in OpenTelemetry or dotnet-counters.</summary>
    public const string MeterName = "Floodgate.Envoy";

    private readonly Meter _meter;
    private readonly Counter<long> _totalHits;
    private readonly Counter<long> _overLimit;
    private readonly Counter<long> _nearLimit;
    private readonly Counter<long> _withinLimit;
    private readonly Counter<long> _shadowMode;
    private readonly Counter<long> _globalShadowMode;
    private readonly Counter<long> _domainNotFound;
    private readonly Counter<long> _storeFailures;
    private readonly Counter<long> _configLoads;
    private readonly bool _ownsMeter;

    public EnvoyRateLimitMetrics(IMeterFactory? meterFactory = null)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _totalHits = _meter.CreateCounter<long>("floodgate.envoy.rate_limit.total_hits", "{hit}", "Hits on a rule.");
        _overLimit = _meter.CreateCounter<long>("floodgate.envoy.rate_limit.over_limit", "{hit}", "Hits beyond a rule's limit.");
        _nearLimit = _meter.CreateCounter<long>("floodgate.envoy.rate_limit.near_limit", "{hit}", "Hits within a rule's limit but past its near-limit ratio.");
        _withinLimit = _meter.CreateCounter<long>("floodgate.envoy.rate_limit.within_limit", "{hit}", "Hits within a rule's limit.");
        _shadowMode = _meter.CreateCounter<long>("floodgate.envoy.rate_limit.shadow_mode", "{hit}", "Hits beyond a shadow rule's limit, allowed.");
        _globalShadowMode = _meter.CreateCounter<long>("floodgate.envoy.global_shadow_mode", "{request}", "Requests over a limit, allowed by global shadow mode.");
        _domainNotFound = _meter.CreateCounter<long>("floodgate.envoy.domain_not_found", "{request}", "Requests for a domain the configuration lacks (not tagged by domain: clients choose it).");
        _storeFailures = _meter.CreateCounter<long>("floodgate.envoy.store_failures", "{decision}", "Decisions answered by the store's failure policy.");
        _configLoads = _meter.CreateCounter<long>("floodgate.envoy.config_loads", "{load}", "Configuration loads, by outcome (success, error).");
    }

    public void Hits(string domain, string rule, long total, long within, long near, long over, long shadow)
    {
        var tags = new TagList { { "domain", domain }, { "rule", rule } };
        _totalHits.Add(total, tags);
        if (within > 0)
        {
            _withinLimit.Add(within, tags);
        }

        if (near > 0)
        {
            _nearLimit.Add(near, tags);
        }

        if (over > 0)
        {
            _overLimit.Add(over, tags);
        }

        if (shadow > 0)
        {
            _shadowMode.Add(shadow, tags);
        }
    }

    public void GlobalShadowMode(string domain) => _globalShadowMode.Add(1, new KeyValuePair<string, object?>("domain", domain));

    public void DomainNotFound() => _domainNotFound.Add(1);

    public void StoreFailure(string domain) => _storeFailures.Add(1, new KeyValuePair<string, object?>("domain", domain));

    public void ConfigLoad(bool success) => _configLoads.Add(1, new KeyValuePair<string, object?>("outcome", success ? "success" : "error"));

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
