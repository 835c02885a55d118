using Floodgate.Engine;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Usage;

/// <summary>
/// One key's state, named by a rule and the request parts its key reads (a subject, a client IP, a header...): read as a
/// cost-0 probe that commits nothing, or reset (<see cref="IResettableStore"/>). The admin side's, never the decision path's.
/// </summary>
public static class KeyStateReader
{
    /// <summary>
    /// The check of <paramref name="rule"/>'s key for <paramref name="request"/>, with the limit the request's plan (or
    /// its subject's override) gives the rule; <see langword="false"/> with the reason in <paramref name="problem"/> when
    /// the request lacks a part the key reads, or its plan is not limited by the rule.
    /// </summary>
    public static bool TryCheck(RateLimitEngine engine, RateLimitRule rule, IRequestContext request, out RateLimitCheck check, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(request);
        check = default;
        RateLimitOverride? found = null;
        if (request.Subject is { } subject)
        {
            engine.Overrides?.TryFind(subject, out found);
        }

        var plan = found?.Plan ?? request.Plan;
        var limit = rule.LimitFor(plan);
        if (found is not null)
        {
            limit = found.LimitFor(rule, limit);
        }

        if (limit is null)
        {
            problem = $"the plan '{plan ?? "(default)"}' is not limited by the rule '{rule.Name}'.";
            return false;
        }

        if (!RuleKeys.TryBuild(rule, limit, request, plan, engine.Policy.Ipv6PrefixLength, out var key))
        {
            problem = $"the rule '{rule.Name}' is keyed by {string.Join(", ", rule.Key)}; give each.";
            return false;
        }

        problem = null;
        check = new RateLimitCheck(limit, key, 0, IsShadow: true) { OnStoreFailure = rule.OnStoreFailure, IsProbe = true };
        return true;
    }

    /// <summary>The state of <paramref name="check"/>'s key (from <see cref="TryCheck"/>), as usage: consumes nothing.</summary>
    public static async ValueTask<RuleUsage> ReadAsync(RateLimitEngine engine, RateLimitRule rule, RateLimitCheck check, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        var outcomes = new StoreOutcome[1];
        await engine.Store.DecideAsync(new[] { check }, outcomes, cancellationToken).ConfigureAwait(false);
        return UsageReader.Of(rule, check.Limit, outcomes[0], (timeProvider ?? TimeProvider.System).GetUtcNow());
    }
}
