using System.Net;
using Floodgate.Gateway.Admin.Auth;
using Floodgate.Gateway.Admin.Usage;
using Floodgate.Gateway.Hosting;
using Floodgate.Rules;
using Floodgate.Usage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Admin.KeyState;

/// <summary>
/// The admin routes of one key's state: a rule and the request parts its key reads, given as query parameters
/// (<c>subject</c>, <c>ip</c>, <c>plan</c>, <c>method</c>, <c>path</c>, <c>host</c>, <c>route</c>, <c>header.NAME</c>,
/// <c>claim.NAME</c>), name the key; it is read as a probe that consumes nothing, or reset.
/// </summary>
internal static class KeyStateRoutes
{
    public static void Map(RouteGroupBuilder group, GatewayRuntime runtime, TimeProvider time, ILogger audit)
    {
        group.MapGet("/rules/{rule}/state", (string rule, HttpContext context) => ReadAsync(runtime, time, rule, context))
            .WithName("GetKeyState")
            .WithSummary("One key's state (a rule, and the parts its key reads as query parameters): limit, used, remaining, reset. Consumes nothing.")
            .WithKeyPartParameters();
        group.MapDelete("/rules/{rule}/state", (string rule, HttpContext context) => ResetAsync(runtime, audit, rule, context))
            .WithName("ResetKeyState")
            .WithSummary("Resets one key's state: its next request starts as a new key's.")
            .WithKeyPartParameters()
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
    }

    private static async Task<Results<Ok<RuleUsageView>, ValidationProblem>> ReadAsync(GatewayRuntime runtime, TimeProvider time, string rule, HttpContext context)
    {
        var engine = runtime.Floodgate.Engine;
        if (Check(runtime, rule, context.Request.Query, out var found, out var check) is { } problem)
        {
            return problem;
        }

        var usage = await KeyStateReader.ReadAsync(engine, found!, check, time, context.RequestAborted).ConfigureAwait(false);
        return TypedResults.Ok(RuleUsageView.Of(usage));
    }

    private static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> ResetAsync(GatewayRuntime runtime, ILogger audit, string rule, HttpContext context)
    {
        if (Check(runtime, rule, context.Request.Query, out _, out var check) is { } problem)
        {
            return problem;
        }

        if (StoreReset.Of(runtime) is not { } store)
        {
            return TypedResults.Problem(detail: $"The store in force ({runtime.StoreKind}) cannot reset a key.", statusCode: StatusCodes.Status409Conflict, title: "Not supported by the store.");
        }

        var target = $"{rule} {context.Request.QueryString}";
        if (!await store.ResetAsync(check, context.RequestAborted).ConfigureAwait(false))
        {
            return AdminProblems.NotFound($"The store holds no state for the rule '{rule}' with {context.Request.QueryString}.");
        }

        AdminAudit.Changed(audit, context.TokenName(), "reset key", target, "state forgotten");
        return TypedResults.NoContent();
    }

    /// <summary>The rule's check for the parts the query gives; a 400 naming the field at fault.</summary>
    private static ValidationProblem? Check(GatewayRuntime runtime, string name, IQueryCollection query, out RateLimitRule? rule, out Stores.RateLimitCheck check)
    {
        check = default;
        var policy = runtime.Policy;
        rule = AdminInput.Rule(policy, Uri.UnescapeDataString(name));
        if (rule is null)
        {
            return AdminProblems.BadField("rule", $"'{name}' is not a rule; the rules are: {string.Join(", ", policy.Floodgate.Policy.Rules.Select(r => r.Name))}.");
        }

        var subject = query["subject"].ToString() is { Length: > 0 } given ? given : null;
        if (subject is { Length: > Floodgate.Overrides.RateLimitOverride.MaxSubjectLength })
        {
            return AdminProblems.BadField("subject", $"is {subject.Length} characters; at most {Floodgate.Overrides.RateLimitOverride.MaxSubjectLength}.");
        }

        IPAddress? ip = null;
        if (query["ip"].ToString() is { Length: > 0 } address && !IPAddress.TryParse(address, out ip))
        {
            return AdminProblems.BadField("ip", $"'{address}' is not an IP address.");
        }

        var plan = query["plan"].ToString() is { Length: > 0 } p ? p : null;
        if (plan is not null && AdminInput.CheckPlan(policy, "plan", plan) is { } badPlan)
        {
            return badPlan;
        }

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var claims = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in query)
        {
            if (key.StartsWith("header.", StringComparison.Ordinal))
            {
                headers[key["header.".Length..]] = value.ToString();
            }
            else if (key.StartsWith("claim.", StringComparison.Ordinal))
            {
                claims[key["claim.".Length..]] = value.ToString();
            }
        }

        var request = new RequestContext
        {
            Subject = subject,
            ClientIp = ip,
            Plan = plan,
            Method = query["method"].ToString() is { Length: > 0 } method ? method : "GET",
            Path = query["path"].ToString() is { Length: > 0 } path ? path : "/",
            Host = query["host"].ToString() is { Length: > 0 } host ? host : null,
            RouteTemplate = query["route"].ToString() is { Length: > 0 } route ? route : null,
            Headers = headers,
            Claims = claims,
        };
        return KeyStateReader.TryCheck(runtime.Floodgate.Engine, rule, request, out check, out var problem)
            ? null
            : AdminProblems.BadField(problem!.StartsWith("the plan", StringComparison.Ordinal) ? "plan" : "key", problem);
    }
}
