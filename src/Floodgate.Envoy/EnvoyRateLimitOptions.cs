using Microsoft.Extensions.Options;

namespace Floodgate.Envoy;

/// <summary>Options of Floodgate's Envoy rate limit service; each names the envoyproxy/ratelimit setting it replaces.</summary>
public sealed class EnvoyRateLimitOptions
{
    /// <summary>
    /// The directory of envoyproxy/ratelimit YAML files (<c>*.yaml</c>, <c>*.yml</c>), one domain each; the reference's
    /// <c>RUNTIME_ROOT</c>/<c>RUNTIME_SUBDIRECTORY</c>/<c>RUNTIME_APPDIRECTORY</c>. Required.
    /// </summary>
    public string ConfigDirectory { get; set; } = string.Empty;

    /// <summary>Whether changes in <see cref="ConfigDirectory"/> are reloaded (<c>RUNTIME_WATCH_ROOT</c>). Default: true.</summary>
    public bool WatchConfigDirectory { get; set; } = true;

    /// <summary>How long the directory must stay quiet after a change before it is reloaded. Default: 500 ms.</summary>
    public TimeSpan ReloadDebounce { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Whether several files may add descriptors to one domain (<c>MERGE_DOMAIN_CONFIG</c>); otherwise a duplicate domain is an error. Default: false.</summary>
    public bool MergeDomainConfigs { get; set; }

    /// <summary>Whether every rule runs in shadow mode: counted and measured, never enforced (<c>SHADOW_MODE</c>). Default: false.</summary>
    public bool GlobalShadowMode { get; set; }

    /// <summary>Whether every rule is a quota rule (<c>QUOTA_MODE</c>). Default: false.</summary>
    public bool GlobalQuotaMode { get; set; }

    /// <summary>
    /// Whether responses carry limit headers for Envoy to add to the downstream response, describing the descriptor
    /// closest to its limit (<c>LIMIT_RESPONSE_HEADERS_ENABLED</c>). Default: false.
    /// </summary>
    public bool ResponseHeadersEnabled { get; set; }

    /// <summary>The name of the header that carries the limit (<c>LIMIT_LIMIT_HEADER</c>). Default: <c>RateLimit-Limit</c>, as the reference's.</summary>
    public string LimitHeader { get; set; } = "RateLimit-Limit";

    /// <summary>The name of the header that carries what remains (<c>LIMIT_REMAINING_HEADER</c>). Default: <c>RateLimit-Remaining</c>, as the reference's.</summary>
    public string RemainingHeader { get; set; } = "RateLimit-Remaining";

    /// <summary>The name of the header that carries the seconds until reset (<c>LIMIT_RESET_HEADER</c>). Default: <c>RateLimit-Reset</c>, as the reference's.</summary>
    public string ResetHeader { get; set; } = "RateLimit-Reset";

    /// <summary>
    /// Which hits are counted: <see cref="EnvoyHitCounting.All"/> (the reference's default, hits over the limit too),
    /// <see cref="EnvoyHitCounting.StopWhenOverLimit"/> (<c>STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT</c>) or
    /// <see cref="EnvoyHitCounting.WithinLimit"/> (Floodgate's: never a hit over the limit). Default: All.
    /// </summary>
    public EnvoyHitCounting HitCounting { get; set; } = EnvoyHitCounting.All;

    /// <summary>The share of a limit past which hits count as near the limit (<c>NEAR_LIMIT_RATIO</c>). Default: 0.8.</summary>
    public double NearLimitRatio { get; set; } = 0.8;

    /// <summary>
    /// The most descriptors one request may carry; a request with more is refused with <c>INVALID_ARGUMENT</c>. The
    /// reference has no such cap. Default: 256; at least 1.
    /// </summary>
    public int MaxDescriptors { get; set; } = 256;

    /// <summary>Throws when an option is out of range, with a message naming it.</summary>
    /// <exception cref="OptionsValidationException">An option is invalid.</exception>
    public void Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(ConfigDirectory))
        {
            errors.Add("EnvoyRateLimitOptions.ConfigDirectory is required: the directory of envoyproxy/ratelimit YAML files.");
        }

        if (ReloadDebounce < TimeSpan.Zero || ReloadDebounce > TimeSpan.FromMinutes(1))
        {
            errors.Add($"EnvoyRateLimitOptions.ReloadDebounce must be between 0 and 1 minute, not {ReloadDebounce}.");
        }

        if (!(NearLimitRatio is >= 0 and <= 1))
        {
            errors.Add($"EnvoyRateLimitOptions.NearLimitRatio must be between 0 and 1, not {NearLimitRatio}.");
        }

        if (!Enum.IsDefined(HitCounting))
        {
            errors.Add($"EnvoyRateLimitOptions.HitCounting must be All, StopWhenOverLimit or WithinLimit, not {HitCounting}.");
        }

        if (MaxDescriptors < 1)
        {
            errors.Add($"EnvoyRateLimitOptions.MaxDescriptors must be at least 1, not {MaxDescriptors}.");
        }

        foreach (var (name, value) in new[] { (nameof(LimitHeader), LimitHeader), (nameof(RemainingHeader), RemainingHeader), (nameof(ResetHeader), ResetHeader) })
        {
            if (string.IsNullOrWhiteSpace(value) || value.Any(c => c <= ' ' || c >= 127 || c == ':'))
            {
                errors.Add($"EnvoyRateLimitOptions.{name} must be a valid HTTP header name, not '{value}'.");
            }
        }

        if (errors.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(EnvoyRateLimitOptions), errors);
        }
    }
}
