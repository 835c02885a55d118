using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

// Building a request's batch: the rules of each tier that match it, under its plan or its override, with their keys.
public sealed partial class RateLimitEngine
{
    private static TierBatch? Build(RateLimitPolicy policy, IOverrideStore? overrides, RateLimitTier first, RateLimitTier last, IRequestContext request, ReadOnlySpan<RateLimitCheck> preChecks)
    {
        var capacity = preChecks.Length;
        for (var tier = first; tier <= last; tier++)
        {
            capacity += policy.RulesOf(tier).Length;
        }

        if (capacity == 0)
        {
            return null;
        }

        // One local lookup per call, none for an anonymous caller: an override names a validated subject, or the
        // account its credentials name (looked up only when the subject has no override of its own).
        RateLimitOverride? found = null;
        if (overrides is not null && request.Subject is { } subject && request is not IAnonymousSubject { IsAnonymousSubject: true }
            && !overrides.TryFind(subject, out found) && overrides.HasAccountOverrides
            && request.GetClaim(RateLimitOverride.AccountClaim) is { Length: > 0 } account)
        {
            overrides.TryFindAccount(account, out found);
        }

        var plan = found?.Plan ?? request.Plan;
        var batch = TierBatch.Rent(capacity);
        batch.AddPreChecks(preChecks);
        for (var tier = first; tier <= last; tier++)
        {
            foreach (var rule in policy.RulesOf(tier))
            {
                if (!rule.Match.IsMatch(request) || LimitOf(rule, plan, found) is not { } limit
                    || !RuleKeys.TryBuild(rule, limit, request, plan, policy.Ipv6PrefixLength, out var key))
                {
                    continue;
                }

                var shadow = policy.ShadowAll || rule.Mode == RuleMode.Shadow;
                var cost = rule.Costs is { } costs && limit.Algorithm != LimitAlgorithm.Concurrency ? costs.Estimate(request) : rule.Cost;
                batch.Add(rule, new RateLimitCheck(limit, key, cost, shadow) { OnStoreFailure = rule.OnStoreFailure });
            }

            batch.EndStage();
        }

        if (batch.Count == 0)
        {
            TierBatch.Return(batch);
            return null;
        }

        return batch;
    }

    private static Limit? LimitOf(RateLimitRule rule, string? plan, RateLimitOverride? found)
    {
        var limit = rule.LimitFor(plan);
        return found is null ? limit : found.LimitFor(rule, limit);
    }
}
