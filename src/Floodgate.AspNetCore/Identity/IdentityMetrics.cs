using System.Diagnostics.Metrics;
using Floodgate.Engine;

namespace Floodgate.AspNetCore.Identity;

/// <summary>The identity instruments, on the <c>Floodgate</c> meter.</summary>
internal sealed class IdentityMetrics
{
    private static readonly Meter SharedMeter = new(RateLimitEngine.MeterName);

    private readonly Counter<long> _validations;
    private readonly Counter<long> _cacheHits;
    private readonly Counter<long> _keyRefreshes;
    private long _signatureChecks;

    public IdentityMetrics(IMeterFactory? meterFactory)
    {
        var meter = meterFactory?.Create(RateLimitEngine.MeterName) ?? SharedMeter;
        _validations = meter.CreateCounter<long>("floodgate.identity.validations", "{request}", "Identity resolutions by outcome.");
        _cacheHits = meter.CreateCounter<long>("floodgate.identity.token_cache.hits", "{request}", "Tokens answered from the validated-token cache, without a signature check.");
        _keyRefreshes = meter.CreateCounter<long>("floodgate.identity.key_refreshes", "{fetch}", "Signing key fetches from the identity provider, by outcome.");
    }

    /// <summary>How many tokens went through full validation (a signature check); for tests.</summary>
    public long SignatureChecks => Interlocked.Read(ref _signatureChecks);

    public void Outcome(string outcome) => _validations.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void CacheHit() => _cacheHits.Add(1);

    public void SignatureCheck() => Interlocked.Increment(ref _signatureChecks);

    public void KeyRefresh(bool success) =>
        _keyRefreshes.Add(1, new KeyValuePair<string, object?>("outcome", success ? "success" : "failure"));
}
