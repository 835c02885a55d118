using Envoy.Service.Ratelimit.V3;
using Floodgate.Limits;

namespace Floodgate.Envoy.Configuration;

/// <summary>A configured <c>rate_limit</c>: what the descriptor tree found, precomputed once per load.</summary>
internal sealed class EnvoyRule
{
    public EnvoyRule(
        string domain,
        string fullKey,
        uint requestsPerUnit,
        RateLimitResponse.Types.RateLimit.Types.Unit unit,
        LimitAlgorithm algorithm,
        long? burst,
        string? name,
        string[] replaces,
        bool unlimited,
        bool shadowMode,
        bool quotaMode,
        bool detailedMetric)
    {
        Domain = domain;
        FullKey = fullKey;
        RequestsPerUnit = requestsPerUnit;
        Unit = unit;
        Algorithm = algorithm;
        Name = string.IsNullOrEmpty(name) ? null : name;
        Replaces = replaces;
        Unlimited = unlimited;
        ShadowMode = shadowMode;
        QuotaMode = quotaMode;
        DetailedMetric = detailedMetric;
        if (!unlimited && requestsPerUnit > 0)
        {
            var rate = new Rate(requestsPerUnit, 1, EnvoyUnits.ToRateUnit(unit));
            Limit = algorithm switch
            {
                LimitAlgorithm.Gcra => Limit.Gcra(rate, burst),
                LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
                _ => Limit.FixedWindow(rate),
            };
        }

        StoreScope = $"envoy\n{domain}\n{algorithm}\n1{unit}";
        Response = new RateLimitResponse.Types.RateLimit { RequestsPerUnit = requestsPerUnit, Unit = unit, Name = name ?? string.Empty };
    }

    /// <summary>The domain.</summary>
    public string Domain { get; }

    /// <summary>The path of the rule in the tree, <c>domain.key_value.key</c>, the metric name of the reference.</summary>
    public string FullKey { get; }

    /// <summary>The amount per unit; 0 rejects every counted hit, as in the reference.</summary>
    public uint RequestsPerUnit { get; }

    /// <summary>The unit.</summary>
    public RateLimitResponse.Types.RateLimit.Types.Unit Unit { get; }

    /// <summary>The algorithm: fixed window unless the rule asks for another.</summary>
    public LimitAlgorithm Algorithm { get; }

    /// <summary>The name other rules' <c>replaces</c> refer to; <see langword="null"/> when unnamed.</summary>
    public string? Name { get; }

    /// <summary>The names of the rules this one removes from a request it applies to.</summary>
    public string[] Replaces { get; }

    /// <summary>Whether the rule never limits and never touches the store.</summary>
    public bool Unlimited { get; }

    /// <summary>Whether an over-limit decision is reported as OK (and counted as shadow).</summary>
    public bool ShadowMode { get; }

    /// <summary>Whether the rule is a quota: the request is over the limit only when every quota rule of it is.</summary>
    public bool QuotaMode { get; }

    /// <summary>Whether metrics name the descriptor's actual values rather than the rule's path.</summary>
    public bool DetailedMetric { get; }

    /// <summary>The engine limit; <see langword="null"/> when unlimited or when the amount is 0.</summary>
    public Limit? Limit { get; }

    /// <summary>
    /// The scope of the rule's store keys: the domain, the algorithm and the window (period length and unit), so that state
    /// never mixes layouts and a limit override never shares a counter with a configured rule of another window.
    /// </summary>
    public string StoreScope { get; }

    /// <summary>The limit as the response reports it; shared, never modified.</summary>
    public RateLimitResponse.Types.RateLimit Response { get; }
}
