using Floodgate.Gateway.Hosting;
using Floodgate.Usage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.Gateway.Admin.Usage;

/// <summary>The admin route that reads a subject's usage (<see cref="UsageReader"/>): it consumes nothing.</summary>
internal static class UsageRoutes
{
    public static void Map(RouteGroupBuilder group, GatewayRuntime runtime, TimeProvider time)
    {
        group.MapGet("/subjects/{subject}/usage", (string subject, string? plan, CancellationToken cancel) => ReadAsync(runtime, time, subject, plan, cancel))
            .WithName("GetUsage")
            .WithSummary("A subject's usage of each rule keyed by subject: limit, used, remaining, reset, and a quota's period. Consumes nothing.");
    }

    private static async Task<Results<Ok<UsageView>, ValidationProblem>> ReadAsync(GatewayRuntime runtime, TimeProvider time, string subject, string? plan, CancellationToken cancel)
    {
        if (AdminInput.Subject(subject, out var problem) is not { } name)
        {
            return problem!;
        }

        if (plan is not null && AdminInput.CheckPlan(runtime.Policy, "plan", plan) is { } badPlan)
        {
            return badPlan;
        }

        var engine = runtime.Floodgate.Engine;
        var found = runtime.Overrides.TryFind(name, out var value) ? value : null;
        var usage = await UsageReader.ReadAsync(engine, name, plan, time, cancel).ConfigureAwait(false);
        return TypedResults.Ok(new UsageView(
            name,
            found?.Plan ?? plan,
            found is not null,
            [.. usage.Select(RuleUsageView.Of)]));
    }
}

/// <summary>A subject's usage.</summary>
/// <param name="Subject">The subject.</param>
/// <param name="Plan">The plan in force for it (its override's, or the plan asked about); <see langword="null"/> for the default plan.</param>
/// <param name="Overridden">Whether an override is in force for it.</param>
/// <param name="Rules">Each rule keyed by subject.</param>
internal sealed record UsageView(string Subject, string? Plan, bool Overridden, IReadOnlyList<RuleUsageView> Rules);

/// <summary>One rule's usage.</summary>
/// <param name="Rule">The rule's name.</param>
/// <param name="Algorithm">The algorithm.</param>
/// <param name="Rate">The rate the subject is held to, such as <c>300/min</c>.</param>
/// <param name="Limit">What the limit grants at once (a gcra limit's burst).</param>
/// <param name="Used">What the subject has spent of it.</param>
/// <param name="Remaining">What it can spend now.</param>
/// <param name="ResetSeconds">Seconds until the limit is whole again.</param>
/// <param name="PeriodStart">For a quota, when its period started.</param>
/// <param name="PeriodEnd">For a quota, when its period ends.</param>
/// <param name="StoreFailure">Whether the store could not be read (the numbers are then its failure mode's).</param>
/// <param name="Unit">What the limit counts: <c>requests</c>, or a cost rule's unit (<c>tokens</c>, <c>usd-micros</c>; docs/cost.md).</param>
internal sealed record RuleUsageView(string Rule, string Algorithm, string Rate, long Limit, long Used, long Remaining, double ResetSeconds, DateTimeOffset? PeriodStart, DateTimeOffset? PeriodEnd, bool StoreFailure, string Unit)
{
    /// <summary>The view of <paramref name="u"/>.</summary>
    public static RuleUsageView Of(RuleUsage u) => new(
        u.Rule.Name,
        u.Limit.Algorithm switch
        {
            Limits.LimitAlgorithm.Gcra => "gcra",
            Limits.LimitAlgorithm.SlidingWindow => "sliding_window",
            Limits.LimitAlgorithm.FixedWindow => "fixed_window",
            Limits.LimitAlgorithm.Quota => "quota",
            Limits.LimitAlgorithm.SlidingLog => "sliding_log",
            Limits.LimitAlgorithm.LeakyBucket => "leaky_bucket",
            _ => "concurrency",
        },
        u.Limit.Rate.ToString(),
        u.Capacity,
        u.Used,
        u.Remaining,
        Math.Round(u.ResetAfter.TotalSeconds, 3),
        u.PeriodStart,
        u.PeriodEnd,
        u.IsStoreFailure,
        u.Rule.Costs?.Unit ?? "requests");
}
