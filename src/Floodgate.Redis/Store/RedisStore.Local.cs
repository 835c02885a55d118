using Floodgate.Algorithms;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Redis;

// Answers without Redis: the over-limit cache and leased slices.
public sealed partial class RedisStore
{
    // An always-charged check is decided by the script alone: its cost is charged even when a cache would deny it.
    // A sliding log is decided on its log, which only the script reads.
    private static bool IsCacheable(in RateLimitCheck check) =>
        check.Cost > 0 && check.Limit.Algorithm is not (LimitAlgorithm.Concurrency or LimitAlgorithm.SlidingLog) && !IsCharged(check);

    /// <summary>Whether the check is spent from a leased slice: a probe never is, as it spends nothing.</summary>
    private static bool IsLeased(in RateLimitCheck check) =>
        check.Limit.LeasedSlice > 0 && check.Cost > 0 && check.Cost <= check.Limit.LeasedSlice && !check.IsProbe && check.Limit.Algorithm != LimitAlgorithm.Concurrency && !IsCharged(check);

    /// <summary>Whether a check is charged however it is decided (<see cref="RateLimitCheck.IsAlwaysCharged"/>).</summary>
    private static bool IsCharged(in RateLimitCheck check) =>
        check.IsAlwaysCharged && !check.IsProbe && check.Limit.Algorithm != LimitAlgorithm.Concurrency;

    /// <summary>A check of an identity denied locally by a sibling: not evaluated, not committed.</summary>
    private static StoreOutcome Unevaluated(in RateLimitCheck check) =>
        new(new LimitOutcome(true, check.Limit.Amount, 0, 0), false, 0);

    private bool CacheDenies(in RateLimitCheck check, long now, out LimitOutcome outcome)
    {
        outcome = default;
        return _cache is not null && IsCacheable(check) && _cache.TryDeny(check, now, out outcome);
    }

    /// <summary>
    /// Answers a group's checks locally where it can and counts the rest as remote; <see langword="true"/> when the
    /// over-limit cache denies an enforced check of it, which rejects its stage.
    /// </summary>
    private bool AnswerLocally(Batch batch, Group group, ReadOnlySpan<RateLimitCheck> checks, Span<StoreOutcome> outcomes)
    {
        var sources = batch.Sources;
        var localNow = batch.LocalNow;

        // The over-limit cache: one cached denial of an enforced check denies the identity without Redis.
        var denied = false;
        foreach (var k in group.Members)
        {
            if (CacheDenies(checks[k], localNow, out var cached))
            {
                sources[k] = Source.Cached;
                outcomes[k] = new StoreOutcome(cached, false, 0);
                denied |= !checks[k].IsShadow;
            }
        }

        if (denied)
        {
            foreach (var k in group.Members)
            {
                if (sources[k] != Source.Cached)
                {
                    sources[k] = Source.Unevaluated;
                    outcomes[k] = Unevaluated(checks[k]);
                }
            }

            _metrics.CountLocal(group.Members.Count, "over_limit_cache");
            return true;
        }

        foreach (var k in group.Members)
        {
            if (sources[k] == Source.Cached)
            {
                _metrics.CountLocal(1, "over_limit_cache");
                continue;
            }

            if (IsLeased(checks[k]))
            {
                switch (_slices.TryTake(checks[k], localNow, out var left))
                {
                    case LeaseSlices.Take.Local:
                        sources[k] = Source.Leased;
                        outcomes[k] = new StoreOutcome(new LimitOutcome(true, left, _slices.Lifetime(checks[k], localNow), 0), true, 0);
                        _metrics.CountLocal(1, "leased_slice");
                        continue;
                    case LeaseSlices.Take.Acquire:
                        sources[k] = Source.Acquire;
                        group.RemoteCount++;
                        continue;
                }
            }

            sources[k] = Source.Remote;
            group.RemoteCount++;
        }

        return false;
    }

    /// <summary>Gives back what a group took locally when the group will not be decided.</summary>
    private void Abandon(Group group, ReadOnlySpan<RateLimitCheck> checks, Source[] sources)
    {
        foreach (var k in group.Members)
        {
            if (sources[k] == Source.Leased)
            {
                _slices.Refund(checks[k]);
            }
            else if (sources[k] == Source.Acquire)
            {
                _slices.Acquired(checks[k], 0, 0);
            }
        }
    }
}
