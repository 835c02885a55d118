using Floodgate.Events;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

// Threshold events: read from what an admitted decision already returns (its remaining), no store call of its own.
public sealed partial class RateLimitEngine
{
    private IThresholdObserver? _thresholdObserver;

    /// <summary>Sees the threshold crossings of rules that declare thresholds; <see langword="null"/> for none.</summary>
    public IThresholdObserver? ThresholdObserver
    {
        get => Volatile.Read(ref _thresholdObserver);
        set => Volatile.Write(ref _thresholdObserver, value);
    }

    /// <summary>
    /// Whether the committed <paramref name="check"/> took its key across one of <paramref name="rule"/>'s thresholds:
    /// used before it is below the threshold, used after it at or above. Counts only rise within a period, so of all the
    /// requests of every replica exactly one crosses each threshold; the observer's store dedup covers the rest (a refund,
    /// a reset, a gcra refill).
    /// </summary>
    private void CheckThresholds(RateLimitRule rule, IReadOnlyList<int> thresholds, in RateLimitCheck check, in StoreOutcome stored, IRequestContext request)
    {
        if (Volatile.Read(ref _thresholdObserver) is not { } observer || check.Limit.Algorithm == LimitAlgorithm.Concurrency)
        {
            return;
        }

        var limit = check.Limit;
        var capacity = limit.Burst;
        var after = capacity - Math.Clamp(stored.Outcome.Remaining, 0, capacity);
        var before = after - check.Cost;
        foreach (var percent in thresholds)
        {
            var mark = capacity * percent;
            if (before * 100 < mark && after * 100 >= mark)
            {
                observer.OnCrossed(Crossing(rule, limit, percent, after, stored, request));
            }
        }
    }

    private ThresholdCrossing Crossing(RateLimitRule rule, Limit limit, int percent, long used, in StoreOutcome stored, IRequestContext request)
    {
        var at = _time.GetUtcNow();
        var now = (at - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
        long start;
        long end;
        if (limit.Calendar is not null)
        {
            (start, end) = limit.CalendarPeriod(now);
        }
        else if (limit.Algorithm == LimitAlgorithm.Quota)
        {
            // A rolling quota's period runs from its first request to its reset: the same end for every request of it, to the second.
            end = (now + Math.Max(0, stored.Outcome.ResetAfterMicroseconds) + 500_000) / 1_000_000 * 1_000_000;
            start = end - limit.PeriodMicroseconds;
        }
        else
        {
            start = now / limit.PeriodMicroseconds * limit.PeriodMicroseconds;
            end = start + limit.PeriodMicroseconds;
        }

        var subject = request.Subject ?? (request.ClientIp is { } ip ? ClientAddress.Name(ip, Policy.Ipv6PrefixLength) : "anonymous");
        RateLimitOverride? found = null;
        if (request.Subject is { } named)
        {
            Overrides?.TryFind(named, out found);
        }

        return new ThresholdCrossing(
            rule,
            subject,
            found?.Plan ?? request.Plan,
            percent,
            used,
            limit.Burst,
            limit.Rate.ToString(),
            DateTimeOffset.UnixEpoch.AddTicks(start * TimeSpan.TicksPerMicrosecond),
            DateTimeOffset.UnixEpoch.AddTicks(end * TimeSpan.TicksPerMicrosecond),
            at);
    }
}
