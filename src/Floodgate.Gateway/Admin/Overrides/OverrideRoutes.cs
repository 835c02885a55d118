using System.ComponentModel;
using Floodgate.Gateway.Admin.Auth;
using Floodgate.Gateway.Hosting;
using Floodgate.Overrides;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Admin.Overrides;

/// <summary>
/// The admin routes of overrides: read, set and delete a subject's override, and change a subject's plan in one write.
/// Every change is logged with the admin token that made it.
/// </summary>
internal static class OverrideRoutes
{
    /// <summary>The most overrides one list answers.</summary>
    public const int MaxPage = 1000;

    public static void Map(RouteGroupBuilder group, GatewayRuntime runtime, TimeProvider time, ILogger audit)
    {
        group.MapGet("/overrides", (string? after, int? limit, CancellationToken cancel) => ListAsync(runtime, after, limit, cancel))
            .WithName("ListOverrides").WithSummary("The overrides in force, by subject, a page at a time (after the subject given).");
        group.MapGet("/overrides/{subject}", (string subject, CancellationToken cancel) => GetAsync(runtime, subject, cancel))
            .WithName("GetOverride").WithSummary("A subject's override.").ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPut("/overrides/{subject}", (string subject, OverrideRequest body, HttpContext context) => SetAsync(runtime, time, audit, subject, body, context))
            .WithName("SetOverride").WithSummary("Sets a subject's override (its plan, rules' rates, a time to live), replacing any, in one write.");
        group.MapDelete("/overrides/{subject}", (string subject, HttpContext context) => DeleteAsync(runtime, audit, subject, context))
            .WithName("DeleteOverride").WithSummary("Removes a subject's override: its plan claim, or the default plan, applies again.").ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPut("/subjects/{subject}/plan", (string subject, PlanChange body, HttpContext context) => ChangePlanAsync(runtime, time, audit, subject, body, context))
            .WithName("ChangePlan").WithSummary("Moves a subject to a plan in one write, keeping its counters and any rates its override sets.");
    }

    private static async Task<Results<Ok<OverrideList>, ValidationProblem>> ListAsync(GatewayRuntime runtime, string? after, int? limit, CancellationToken cancel)
    {
        var take = limit ?? 100;
        if (take is < 1 or > MaxPage)
        {
            return AdminProblems.BadField("limit", $"must be from 1 to {MaxPage}, not {take}.");
        }

        var page = await runtime.Overrides.ListAsync(after, take, cancel).ConfigureAwait(false);
        return TypedResults.Ok(new OverrideList([.. page.Select(OverrideView.Of)], page.Count == take ? page[^1].Subject : null));
    }

    private static async Task<Results<Ok<OverrideView>, ProblemHttpResult, ValidationProblem>> GetAsync(GatewayRuntime runtime, string subject, CancellationToken cancel)
    {
        if (AdminInput.Subject(subject, out var problem) is not { } name)
        {
            return problem!;
        }

        return await runtime.Overrides.GetAsync(name, cancel).ConfigureAwait(false) is { } found
            ? TypedResults.Ok(OverrideView.Of(found))
            : AdminProblems.NotFound($"'{name}' has no override.");
    }

    private static async Task<Results<Ok<OverrideView>, ValidationProblem>> SetAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, string subject, OverrideRequest body, HttpContext context)
    {
        var policy = runtime.Policy;
        if (AdminInput.Subject(subject, out var problem) is not { } name)
        {
            return problem!;
        }

        if (body.Plan is { } plan && AdminInput.CheckPlan(policy, "plan", plan) is { } badPlan)
        {
            return badPlan;
        }

        var rates = AdminInput.Rates(policy, body.Rates, out problem);
        if (problem is not null)
        {
            return problem;
        }

        var expiresAt = AdminInput.ExpiresAt(body.Ttl, time, "ttl", out problem);
        if (problem is not null)
        {
            return problem;
        }

        if (body.Plan is null && rates!.Count == 0)
        {
            return AdminProblems.BadField("plan", "an override sets a plan, rules' rates, or both; to remove one, DELETE it.");
        }

        var value = new RateLimitOverride(name, body.Plan, rates, expiresAt);
        await runtime.Overrides.SetAsync(value, context.RequestAborted).ConfigureAwait(false);
        var view = OverrideView.Of(value);
        AdminAudit.Changed(audit, context.TokenName(), "set override", name, view.Describe());
        return TypedResults.Ok(view);
    }

    private static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> DeleteAsync(GatewayRuntime runtime, ILogger audit, string subject, HttpContext context)
    {
        if (AdminInput.Subject(subject, out var problem) is not { } name)
        {
            return problem!;
        }

        if (!await runtime.Overrides.RemoveAsync(name, context.RequestAborted).ConfigureAwait(false))
        {
            return AdminProblems.NotFound($"'{name}' has no override.");
        }

        AdminAudit.Changed(audit, context.TokenName(), "delete override", name, "removed");
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<OverrideView>, ValidationProblem>> ChangePlanAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, string subject, PlanChange body, HttpContext context)
    {
        if (AdminInput.Subject(subject, out var problem) is not { } name)
        {
            return problem!;
        }

        if (string.IsNullOrEmpty(body.Plan))
        {
            return AdminProblems.BadField("plan", "is required: the plan to move the subject to.");
        }

        if (AdminInput.CheckPlan(runtime.Policy, "plan", body.Plan) is { } badPlan)
        {
            return badPlan;
        }

        var expiresAt = AdminInput.ExpiresAt(body.Ttl, time, "ttl", out problem);
        if (problem is not null)
        {
            return problem;
        }

        // The rates the subject's override sets stay; only the plan changes, in the one write that replaces it.
        var current = await runtime.Overrides.GetAsync(name, context.RequestAborted).ConfigureAwait(false);
        var value = new RateLimitOverride(name, body.Plan, current?.Rates, expiresAt);
        await runtime.Overrides.SetAsync(value, context.RequestAborted).ConfigureAwait(false);
        AdminAudit.Changed(audit, context.TokenName(), "change plan", name, $"{current?.Plan ?? "(claim or default)"} -> {body.Plan}{(expiresAt is { } at ? $" until {at:O}" : string.Empty)}");
        return TypedResults.Ok(OverrideView.Of(value));
    }
}

/// <summary>The body of <c>PUT /admin/v1/overrides/{subject}</c>.</summary>
/// <param name="Plan">The plan to put the subject on; omitted to keep its plan claim's.</param>
/// <param name="Rates">Rule names and the rate each holds the subject to, such as <c>{"per-user": "1000/min"}</c>.</param>
/// <param name="Ttl">How long the override lasts, such as <c>7d</c>; omitted for ever.</param>
internal sealed record OverrideRequest(
    [property: Description("The plan to put the subject on; omitted to keep its plan claim's.")] string? Plan = null,
    [property: Description("Rule names and the rate each holds the subject to, such as {\"per-user\": \"1000/min\"}.")] Dictionary<string, string>? Rates = null,
    [property: Description("How long the override lasts, such as 7d; omitted for ever.")] string? Ttl = null);

/// <summary>The body of <c>PUT /admin/v1/subjects/{subject}/plan</c>.</summary>
/// <param name="Plan">The plan to move the subject to.</param>
/// <param name="Ttl">How long the move lasts, such as <c>7d</c>; omitted for ever.</param>
internal sealed record PlanChange(
    [property: Description("The plan to move the subject to.")] string Plan,
    [property: Description("How long the move lasts, such as 7d; omitted for ever.")] string? Ttl = null);

/// <summary>An override as the admin API shows it.</summary>
/// <param name="Subject">The subject.</param>
/// <param name="Plan">The plan it puts the subject on, if any.</param>
/// <param name="Rates">Rule names and rates.</param>
/// <param name="ExpiresAt">When it lapses, if ever.</param>
internal sealed record OverrideView(string Subject, string? Plan, IReadOnlyDictionary<string, string> Rates, DateTimeOffset? ExpiresAt)
{
    public static OverrideView Of(RateLimitOverride value) =>
        new(value.Subject, value.Plan, value.Rates.ToDictionary(r => r.Key, r => r.Value.ToString(), StringComparer.Ordinal), value.ExpiresAt);

    public string Describe() =>
        $"plan {Plan ?? "(claim or default)"}{string.Concat(Rates.Select(r => $", {r.Key} {r.Value}"))}{(ExpiresAt is { } at ? $", until {at:O}" : string.Empty)}";
}

/// <summary>A page of overrides.</summary>
/// <param name="Overrides">The overrides, by subject.</param>
/// <param name="Next">The subject to list after for the next page; <see langword="null"/> on the last page.</param>
internal sealed record OverrideList(IReadOnlyList<OverrideView> Overrides, string? Next);
