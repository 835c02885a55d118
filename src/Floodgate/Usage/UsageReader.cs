using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Overrides;
using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Usage;

/// <summary>
/// Reads a subject's usage of every rule keyed by the subject: each rule is asked about a cost of 0, which the store
/// decides exactly as a request's cost but never commits, so reading usage consumes nothing and says exactly what the
/// limiter would decide next.
/// </summary>
public static class UsageReader
{
    /// <summary>
    /// The usage of <paramref name="subject"/> for each rule of <paramref name="engine"/>'s policy keyed by subject alone
    /// (with the plan, or the route of a rule that matches one route): rules keyed by the client IP, a header, a claim or
    /// the path need a request to be named, and are left out.
    /// </summary>
    /// <param name="engine">The engine, with the policy, store and overrides in force.</param>
    /// <param name="subject">The subject.</param>
    /// <param name="plan">The plan its credentials name (a token's claim, an API key's plan); the override's plan comes first.</param>
    /// <param name="timeProvider">The clock that dates quota periods; the system clock by default.</param>
    /// <param name="cancellationToken">Cancels waiting for a remote store.</param>
    public static async ValueTask<IReadOnlyList<RuleUsage>> ReadAsync(RateLimitEngine engine, string subject, string? plan, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentException.ThrowIfNullOrEmpty(subject);
        var policy = engine.Policy;
        RateLimitOverride? found = null;
        engine.Overrides?.TryFind(subject, out found);
        var effectivePlan = found?.Plan ?? plan;
        var request = new RequestContext { Subject = subject, Plan = effectivePlan };
        var rules = new List<RateLimitRule>();
        var checks = new List<RateLimitCheck>();
        foreach (var rule in policy.Rules)
        {
            if (!IsKeyedBySubject(rule))
            {
                continue;
            }

            var limit = rule.LimitFor(effectivePlan);
            if (found is not null)
            {
                limit = found.LimitFor(rule, limit);
            }

            if (limit is null || !RuleKeys.TryBuild(rule, limit, request, effectivePlan, policy.Ipv6PrefixLength, out var key))
            {
                continue;
            }

            rules.Add(rule);
            checks.Add(new RateLimitCheck(limit, key, 0, IsShadow: true) { OnStoreFailure = rule.OnStoreFailure, IsProbe = true });
        }

        if (checks.Count == 0)
        {
            return [];
        }

        var outcomes = new StoreOutcome[checks.Count];
        await engine.Store.DecideAsync(checks.ToArray(), outcomes, cancellationToken).ConfigureAwait(false);
        var now = (timeProvider ?? TimeProvider.System).GetUtcNow();
        var usage = new RuleUsage[checks.Count];
        for (var i = 0; i < usage.Length; i++)
        {
            usage[i] = Of(rules[i], checks[i].Limit, outcomes[i], now);
        }

        return usage;
    }

    /// <summary>The usage a probe's <paramref name="stored"/> outcome says, of <paramref name="limit"/> at <paramref name="now"/>.</summary>
    internal static RuleUsage Of(RateLimitRule rule, Limit limit, in StoreOutcome stored, DateTimeOffset now)
    {
        var outcome = stored.Outcome;
        var remaining = Math.Clamp(outcome.Remaining, 0, limit.Burst);
        var resetAfter = TimeSpan.FromMicroseconds(Math.Max(0, outcome.ResetAfterMicroseconds));
        DateTimeOffset? start = null, end = null;
        if (limit.Algorithm == LimitAlgorithm.Quota)
        {
            if (limit.Calendar is not null)
            {
                var (from, to) = limit.CalendarPeriod((now.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond);
                start = DateTimeOffset.UnixEpoch.AddTicks(from * TimeSpan.TicksPerMicrosecond);
                end = DateTimeOffset.UnixEpoch.AddTicks(to * TimeSpan.TicksPerMicrosecond);
            }
            else if (remaining < limit.Burst)
            {
                // A rolling period started at the subject's first request and ends when it resets.
                end = now + resetAfter;
                start = end - limit.Rate.Period;
            }
        }

        return new RuleUsage(rule, limit, limit.Burst - remaining, remaining, resetAfter, start, end, stored.IsStoreFailure);
    }

    /// <summary>Whether the rule's key names the subject and nothing a request alone would tell.</summary>
    private static bool IsKeyedBySubject(RateLimitRule rule)
    {
        var subject = false;
        foreach (var part in rule.Key)
        {
            switch (part.Kind)
            {
                case KeyPartKind.Subject:
                    subject = true;
                    break;
                case KeyPartKind.Plan:
                    break;
                case KeyPartKind.Route when rule.Match.RouteKey is not null || rule.Match.Route is not null:
                    break;
                default:
                    return false;
            }
        }

        return subject;
    }
}
