using System.Text;
using Envoy.Extensions.Common.Ratelimit.V3;
using Floodgate.Envoy.Configuration;
using Floodgate.Limits;
using Google.Protobuf.WellKnownTypes;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using DescriptorStatus = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.DescriptorStatus;

namespace Floodgate.Envoy;

// What each descriptor is told (code, limit, remaining, reset) and the hits counted on its metrics, as the reference counts them.
internal sealed partial class EnvoyRateLimitDecider
{
    private DescriptorStatus FromOutcome(EnvoyRule rule, in DescriptorMatch matched, RateLimitDescriptor descriptor, in Group group, string domain)
    {
        if (group.StoreFailure)
        {
            _metrics.StoreFailure(domain);
        }

        var amount = (long)rule.RequestsPerUnit;
        var hits = matched.Hits > long.MaxValue ? long.MaxValue : (long)matched.Hits;

        // Hits that went uncounted leave what remained as it was.
        var prefix = group.Uncounted ? 0 : matched.Prefix;
        var over = prefix > group.Fits;
        var remainingBefore = group.RemainingBefore - (prefix - hits);
        var remainingAfter = group.RemainingBefore - prefix;
        var near = (long)Math.Floor(amount * _options.NearLimitRatio);
        long within = 0, nearHits = 0, overHits = 0, shadowHits = 0;
        if (over)
        {
            // As the reference counts: the hits that crossed the limit are over it, those between the near-limit
            // threshold and the limit are near it.
            var before = amount - Math.Clamp(remainingBefore, 0, amount);
            overHits = before >= amount ? hits : before + hits - amount;
            if (before < amount)
            {
                nearHits = amount - Math.Max(near, before);
            }

            shadowHits = rule.ShadowMode ? overHits : 0;
        }
        else
        {
            within = hits;
            var after = amount - Math.Clamp(remainingAfter, 0, amount);
            var before = after - hits;
            if (after > near)
            {
                nearHits = before >= near ? hits : after - near;
            }
        }

        _metrics.Hits(domain, MetricName(rule, matched, descriptor, domain), hits, within, Math.Max(0, nearHits), Math.Max(0, overHits), Math.Max(0, shadowHits));
        return new DescriptorStatus
        {
            Code = over && !rule.ShadowMode ? Code.OverLimit : Code.Ok,
            CurrentLimit = rule.Response,
            LimitRemaining = over ? 0 : (uint)Math.Clamp(remainingAfter, 0, uint.MaxValue),
            DurationUntilReset = ToDuration(Math.Max(0, group.ResetAfterMicroseconds)),
        };
    }

    /// <summary>A rule of 0 requests per unit: every counted hit is over it, without asking the store.</summary>
    private DescriptorStatus Blocked(EnvoyRule rule, in DescriptorMatch matched, RateLimitDescriptor descriptor, string domain)
    {
        var hits = matched.Hits > long.MaxValue ? long.MaxValue : (long)matched.Hits;
        var over = hits > 0;
        var period = new Rate(1, 1, EnvoyUnits.ToRateUnit(rule.Unit)).Period.Ticks / TimeSpan.TicksPerMicrosecond;
        var now = (_time.GetUtcNow().UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;
        _metrics.Hits(domain, MetricName(rule, matched, descriptor, domain), hits, over ? 0 : hits, 0, over ? hits : 0, over && rule.ShadowMode ? hits : 0);
        return new DescriptorStatus
        {
            Code = over && !rule.ShadowMode ? Code.OverLimit : Code.Ok,
            CurrentLimit = rule.Response,
            LimitRemaining = 0,
            DurationUntilReset = ToDuration(period - (now % period)),
        };
    }

    /// <summary>The rule's path, or for detailed_metric, value_to_metric and overrides the descriptor's own key and values.</summary>
    private static string MetricName(EnvoyRule rule, in DescriptorMatch matched, RateLimitDescriptor descriptor, string domain)
    {
        if (!rule.DetailedMetric && !matched.DetailedName && !matched.IsOverride)
        {
            return rule.FullKey;
        }

        var builder = new StringBuilder(domain);
        var entries = descriptor.Entries;
        for (var i = 0; i < entries.Count; i++)
        {
            builder.Append('.').Append(entries[i].Key);
            var value = matched.Shared?[i] ?? entries[i].Value;
            if (value.Length > 0)
            {
                builder.Append('_').Append(value);
            }
        }

        return builder.ToString();
    }

    /// <summary>
    /// Whole seconds, rounded up: Envoy's x-ratelimit headers print the duration's seconds and drop the fraction, which
    /// would show 49 at 49.3 s and 0 for a reset under a second.
    /// </summary>
    private static Duration ToDuration(long microseconds) =>
        new() { Seconds = (microseconds / 1_000_000) + (microseconds % 1_000_000 > 0 ? 1 : 0) };
}
