using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace Floodgate.Adaptive;

/// <summary>
/// The adaptive limits in force, one per rule, exported as gauges (meter <c>Floodgate.Adaptive</c>). <see cref="Update"/>
/// swaps the rules on a reload and keeps what a limit has learned when its rule's name and settings are unchanged.
/// </summary>
public sealed class AdaptiveLimiterSet : IDisposable
{
    /// <summary>The meter of the adaptive limits' instruments.</summary>
    public const string MeterName = "Floodgate.Adaptive";

    private static readonly Meter Meter = new(MeterName);
    // Weak: a set nobody disposed (a host that never stops) stops being exported once it is collected.
    private static readonly ConditionalWeakTable<AdaptiveLimiterSet, object?> Live = new();

    private readonly TimeProvider _time;
    private readonly ILogger? _logger;
    private AdaptiveEntry[] _entries = [];

    static AdaptiveLimiterSet()
    {
        Meter.CreateObservableGauge("floodgate.adaptive.limit", () => Measure(l => l.Limit), "{request}", "The learned adaptive concurrency limit, by rule and mode (shadow: computed, not enforced).");
        Meter.CreateObservableGauge("floodgate.adaptive.effective_limit", () => Measure(l => l.EffectiveLimit), "{request}", "The adaptive concurrency limit applied now (the minimum while the minimum RTT is measured), by rule and mode.");
        Meter.CreateObservableGauge("floodgate.adaptive.in_flight", () => Measure(l => l.InFlight), "{request}", "Requests in flight under an adaptive concurrency limit, by rule and mode.");
        Meter.CreateObservableCounter("floodgate.adaptive.rejections", () => Measure(l => l.Rejected), "{request}", "Requests refused by an adaptive concurrency limit (enforce), or that would have been (shadow), by rule and mode.");
    }

    /// <summary>Creates an empty set.</summary>
    /// <param name="time">The clock of the limits.</param>
    /// <param name="logger">Where changes of a limit are logged.</param>
    public AdaptiveLimiterSet(TimeProvider time, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _logger = logger;
        Live.AddOrUpdate(this, null);
    }

    /// <summary>The limits in force with their rules, in the order the rules were given.</summary>
    public ReadOnlySpan<AdaptiveEntry> Entries => Volatile.Read(ref _entries);

    /// <summary>Puts <paramref name="rules"/> in force; a rule whose name and settings are unchanged keeps its limit.</summary>
    /// <exception cref="ArgumentException">Two rules share a name.</exception>
    public void Update(IReadOnlyList<AdaptiveConcurrencyRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        if (rules.Select(r => r.Name).Distinct(StringComparer.OrdinalIgnoreCase).Count() != rules.Count)
        {
            throw new ArgumentException("Two adaptive concurrency rules share a name; rule names must be unique.", nameof(rules));
        }

        var old = Volatile.Read(ref _entries);
        var next = new AdaptiveEntry[rules.Count];
        for (var i = 0; i < rules.Count; i++)
        {
            var rule = rules[i];
            var kept = Array.Find(old, e => string.Equals(e.Rule.Name, rule.Name, StringComparison.Ordinal) && e.Limiter.Options == rule.Options);
            next[i] = new AdaptiveEntry(rule, kept?.Limiter ?? new AdaptiveConcurrencyLimiter(rule.Name, rule.Options, _time, _logger));
        }

        Volatile.Write(ref _entries, next);
    }

    /// <summary>What every limit has learned.</summary>
    public IReadOnlyList<AdaptiveSnapshot> Snapshot() => [.. Volatile.Read(ref _entries).Select(e => e.Limiter.Snapshot())];

    /// <summary>Stops exporting the set's limits.</summary>
    public void Dispose() => Live.Remove(this);

    private static IEnumerable<Measurement<long>> Measure(Func<AdaptiveConcurrencyLimiter, long> value)
    {
        foreach (var (set, _) in Live)
        {
            foreach (var entry in Volatile.Read(ref set._entries))
            {
                var limiter = entry.Limiter;
                yield return new Measurement<long>(
                    value(limiter),
                    new KeyValuePair<string, object?>("rule", limiter.Rule),
                    new KeyValuePair<string, object?>("mode", limiter.Options.Mode == AdaptiveMode.Enforce ? "enforce" : "shadow"));
            }
        }
    }
}

/// <summary>A rule and its limit.</summary>
/// <param name="Rule">The rule.</param>
/// <param name="Limiter">Its limit on this replica.</param>
public sealed record AdaptiveEntry(AdaptiveConcurrencyRule Rule, AdaptiveConcurrencyLimiter Limiter);
