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

        // An account's override applies to each of its subjects (the request's account claim) that has none of its own.
        group.MapGet("/accounts/{account}/override", (string account, CancellationToken cancel) => GetAsync(runtime, account, cancel, Account))
            .WithName("GetAccountOverride").WithSummary("An account's override, which applies to its subjects that have none of their own.").ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPut("/accounts/{account}/override", (string account, OverrideRequest body, HttpContext context) => SetAsync(runtime, time, audit, account, body, context, Account))
            .WithName("SetAccountOverride").WithSummary("Sets an account's override (its plan, rules' rates, a time to live), replacing any, in one write.");
        group.MapDelete("/accounts/{account}/override", (string account, HttpContext context) => DeleteAsync(runtime, audit, account, context, Account))
            .WithName("DeleteAccountOverride").WithSummary("Removes an account's override.").ProducesProblem(StatusCodes.Status404NotFound);
        group.MapPut("/accounts/{account}/plan", (string account, PlanChange body, HttpContext context) => ChangePlanAsync(runtime, time, audit, account, body, context, Account))
            .WithName("ChangeAccountPlan").WithSummary("Moves an account's subjects (those without an override of their own) to a plan in one write, keeping their counters.");
    }

    private const bool Account = true;

    /// <summary>The store key and display name of a subject or an account named in a path, or the 400 naming the field.</summary>
    private static (string Key, string Value, string Name)? Target(string raw, bool account, out ValidationProblem? problem)
    {
        if (AdminInput.Subject(raw, out problem) is not { } name)
        {
            problem = account && problem is not null ? AdminProblems.BadField("account", problem.ProblemDetails.Errors["subject"][0]) : problem;
            return null;
        }

        if (name[0] == RateLimitOverride.AccountKeyPrefix[0])
        {
            problem = AdminProblems.BadField(account ? "account" : "subject", "starts with a control character.");
            return null;
        }

        return account ? (RateLimitOverride.AccountKey(name), name, $"account {name}") : (name, name, name);
    }

    private static async Task<Results<Ok<OverrideList>, ValidationProblem>> ListAsync(GatewayRuntime runtime, string? after, int? limit, CancellationToken cancel)
    {
        var take = limit ?? 100;
        if (take is < 1 or > MaxPage)
        {
            return AdminProblems.BadField("limit", $"must be from 1 to {MaxPage}, not {take}.");
        }

        var page = await runtime.Overrides.ListAsync(after, take, cancel).ConfigureAwait(false);
        return TypedResults.Ok(new OverrideList([.. page.Select(OverrideView.Of)], page.Count == take ? page[^1].Key : null));
    }

    private static async Task<Results<Ok<OverrideView>, ProblemHttpResult, ValidationProblem>> GetAsync(GatewayRuntime runtime, string subject, CancellationToken cancel, bool account = false)
    {
        if (Target(subject, account, out var problem) is not var (key, _, name))
        {
            return problem!;
        }

        return await runtime.Overrides.GetAsync(key, cancel).ConfigureAwait(false) is { } found
            ? TypedResults.Ok(OverrideView.Of(found))
            : AdminProblems.NotFound($"'{name}' has no override.");
    }

    private static async Task<Results<Ok<OverrideView>, ValidationProblem>> SetAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, string subject, OverrideRequest body, HttpContext context, bool account = false)
    {
        var policy = runtime.Policy;
        if (Target(subject, account, out var problem) is not var (_, target, name))
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

        var value = account ? RateLimitOverride.ForAccount(target, body.Plan, rates, expiresAt) : new RateLimitOverride(target, body.Plan, rates, expiresAt);
        await runtime.Overrides.SetAsync(value, context.RequestAborted).ConfigureAwait(false);
        var view = OverrideView.Of(value);
        AdminAudit.Changed(audit, context.TokenName(), "set override", name, view.Describe());
        return TypedResults.Ok(view);
    }

    private static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> DeleteAsync(GatewayRuntime runtime, ILogger audit, string subject, HttpContext context, bool account = false)
    {
        if (Target(subject, account, out var problem) is not var (key, _, name))
        {
            return problem!;
        }

        if (!await runtime.Overrides.RemoveAsync(key, context.RequestAborted).ConfigureAwait(false))
        {
            return AdminProblems.NotFound($"'{name}' has no override.");
        }

        AdminAudit.Changed(audit, context.TokenName(), "delete override", name, "removed");
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<OverrideView>, ValidationProblem>> ChangePlanAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, string subject, PlanChange body, HttpContext context, bool account = false)
    {
        if (Target(subject, account, out var problem) is not var (key, value, name))
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
        var current = await runtime.Overrides.GetAsync(key, context.RequestAborted).ConfigureAwait(false);
        var changed = account ? RateLimitOverride.ForAccount(value, body.Plan, current?.Rates, expiresAt) : new RateLimitOverride(value, body.Plan, current?.Rates, expiresAt);
        await runtime.Overrides.SetAsync(changed, context.RequestAborted).ConfigureAwait(false);
        AdminAudit.Changed(audit, context.TokenName(), "change plan", name, $"{current?.Plan ?? "(claim or default)"} -> {body.Plan}{(expiresAt is { } at ? $" until {at:O}" : string.Empty)}");
        return TypedResults.Ok(OverrideView.Of(changed));
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
/// <param name="Subject">The subject, or the account when <paramref name="Account"/>.</param>
/// <param name="Plan">The plan it puts the subject on, if any.</param>
/// <param name="Rates">Rule names and rates.</param>
/// <param name="ExpiresAt">When it lapses, if ever.</param>
/// <param name="Account">Whether it is an account's override.</param>
internal sealed record OverrideView(
    string Subject,
    string? Plan,
    IReadOnlyDictionary<string, string> Rates,
    DateTimeOffset? ExpiresAt,
    [property: System.ComponentModel.Description("Whether it is an account's override (subject then names the account).")] bool Account)
{
    public static OverrideView Of(RateLimitOverride value) =>
        new(value.Subject, value.Plan, value.Rates.ToDictionary(r => r.Key, r => r.Value.ToString(), StringComparer.Ordinal), value.ExpiresAt, value.IsAccount);

    public string Describe() =>
        $"plan {Plan ?? "(claim or default)"}{string.Concat(Rates.Select(r => $", {r.Key} {r.Value}"))}{(ExpiresAt is { } at ? $", until {at:O}" : string.Empty)}";
}

/// <summary>A page of overrides.</summary>
/// <param name="Overrides">The overrides, by subject.</param>
/// <param name="Next">The subject to list after for the next page; <see langword="null"/> on the last page.</param>
internal sealed record OverrideList(IReadOnlyList<OverrideView> Overrides, string? Next);
