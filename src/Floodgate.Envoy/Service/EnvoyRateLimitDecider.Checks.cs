using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Envoy.Configuration;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Envoy;

// From descriptors to store checks and back: the rule a limit override stands for, the store key of a descriptor, and
// the outcome of a check that groups several descriptors, settled as the reference's one increment per descriptor.
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
    /// Turns each check's outcome into what its descriptors see, as the reference's one increment per descriptor in
    /// request order would: descriptor i of a group sees what remained before the group less the hits of descriptors
    /// 1..i, and is over the limit once that is negative. A store never charges a denied check, so when a group's sum
    /// is denied, only the hits of the descriptors that fit (the longest prefix within what remained) are charged, in a
    /// second store call; those descriptors are OK, the rest are over the limit and uncharged, exactly as if each
    /// descriptor had been checked alone in order.
    /// </summary>
    private async ValueTask<Group[]> SettleGroupsAsync(DescriptorMatch[] matches, RateLimitCheck[] checks, StoreOutcome[] outcomes, CancellationToken cancellationToken)
    {
        // Checks [0, outcomes.Length) were decided; a check's cost is its descriptors' summed hits.
        var results = new Group[outcomes.Length];
        for (var c = 0; c < outcomes.Length; c++)
        {
            var total = checks[c].Cost;
            var outcome = outcomes[c].Outcome;
            var failure = outcomes[c].IsStoreFailure;
            if (outcome.IsAllowed)
            {
                var before = outcome.Remaining > long.MaxValue - total ? long.MaxValue : outcome.Remaining + total;
                results[c] = new Group(before, long.MaxValue, outcome.ResetAfterMicroseconds, failure);
                continue;
            }

            results[c] = new Group(outcome.Remaining, -1, outcome.ResetAfterMicroseconds, failure);
            if (failure || outcome.Remaining < 0 || outcome.Remaining >= total)
            {
                continue;
            }

            // The longest prefix of the group's descriptors within what remained (a lone descriptor's prefix is its
            // whole cost, which did not fit: none).
            long fit = 0;
            foreach (var matched in matches)
            {
                if (matched.CheckIndex == c && matched.Prefix <= outcome.Remaining)
                {
                    fit = Math.Max(fit, matched.Prefix);
                }
            }

            if (fit == 0)
            {
                results[c] = results[c] with { Fits = 0 };
                continue;
            }

            var retry = new StoreOutcome[1];
            await _store.DecideAsync(new[] { checks[c] with { Cost = fit } }, retry, cancellationToken).ConfigureAwait(false);
            var charged = retry[0].Outcome;
            if (charged.IsAllowed)
            {
                results[c] = new Group(charged.Remaining + fit, fit, charged.ResetAfterMicroseconds, retry[0].IsStoreFailure);
            }
        }

        return results;
    }

    /// <summary>
    /// What one check's descriptors see: what remained before them, the largest prefix of their hits that is
    /// charged (<see cref="long.MaxValue"/> when all are, -1 when none is), the reset and whether the store failed.
    /// </summary>
    private readonly record struct Group(long RemainingBefore, long Fits, long ResetAfterMicroseconds, bool StoreFailure);
}
