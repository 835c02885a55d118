using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Envoy.Configuration;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Envoy;

// From descriptors to store checks: the rule a limit override stands for, and the store key of a descriptor.
internal sealed partial class EnvoyRateLimitDecider
{
    private EnvoyRule Override(string domain, RateLimitDescriptor.Types.RateLimitOverride limit, int index)
    {
        var unit = EnvoyUnits.FromOverride(limit.Unit);
        if (unit == RateLimitResponse.Types.RateLimit.Types.Unit.Unknown)
        {
            throw Invalid($"descriptor {index}: the limit override has no valid unit ({limit.Unit})");
        }

        var key = (domain, limit.RequestsPerUnit, unit);
        if (_overrides.TryGetValue(key, out var cached))
        {
            return cached;
        }

        // When Envoy sends a limit override, it replaces the configuration entirely: no name, no shadow mode.
        var rule = new EnvoyRule(domain, $"{domain}.override", limit.RequestsPerUnit, unit, LimitAlgorithm.FixedWindow, null, null, [], false, false, false, false);
        if (_overrides.Count < MaxCachedOverrides)
        {
            _overrides.TryAdd(key, rule);
        }

        return rule;
    }

    /// <summary>
    /// The store key: the domain and algorithm scope the key; the descriptor's entries (with share_threshold patterns in
    /// place of values) are its identity, so each descriptor is decided on its own and shares a Redis slot with nothing else.
    /// </summary>
    private static StoreKey Key(EnvoyRule rule, RateLimitDescriptor descriptor, string[]? shared)
    {
        var builder = t_builder ??= new StringBuilder(128);
        builder.Clear();
        var entries = descriptor.Entries;
        for (var i = 0; i < entries.Count; i++)
        {
            var value = shared?[i] ?? entries[i].Value;
            builder.Append(entries[i].Key.Length).Append(':').Append(entries[i].Key)
                .Append(value.Length).Append(':').Append(value);
        }

        return StoreKey.Create(rule.StoreScope, builder.ToString());
    }

    /// <summary>
    /// What one check's descriptors see: what remained before them, the largest prefix of their hits that is within the
    /// limit (<see cref="long.MaxValue"/> when all are, -1 when none is), the reset, whether the store failed, and whether
    /// their hits went uncounted (<see cref="EnvoyHitCounting.StopWhenOverLimit"/>: another descriptor went over).
    /// </summary>
    private readonly record struct Group(long RemainingBefore, long Fits, long ResetAfterMicroseconds, bool StoreFailure, bool Uncounted = false);
}
