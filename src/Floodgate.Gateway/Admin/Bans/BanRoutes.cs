using System.ComponentModel;
using Floodgate.Bans;
using Floodgate.Gateway.Admin.Auth;
using Floodgate.Gateway.Admin.KeyState;
using Floodgate.Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Admin.Bans;

/// <summary>
/// The admin routes of bans: list the bans in force (set here, or started by an edge rule), ban an IP address, a network
/// or a subject for a time, and lift a ban. Every change is logged with the admin token that made it.
/// </summary>
internal static class BanRoutes
{
    /// <summary>The most bans one list answers.</summary>
    public const int MaxPage = 1000;

    public static void Map(RouteGroupBuilder group, GatewayRuntime runtime, TimeProvider time, ILogger audit)
    {
        group.MapGet("/bans", (int? limit, CancellationToken cancel) => ListAsync(runtime, limit, cancel))
            .WithName("ListBans").WithSummary("The bans in force, the latest first: set through this API, or started by an edge rule's ban.");
        group.MapPost("/bans", (BanRequest body, HttpContext context) => AddAsync(runtime, time, audit, body, context))
            .WithName("AddBan").WithSummary("Bans an IP address, a network (CIDR) or a subject for a time to live, replacing any ban on it.").ProducesProblem(StatusCodes.Status409Conflict);
        group.MapDelete("/bans/{kind}/{*target}", (string kind, string target, HttpContext context) => RemoveAsync(runtime, audit, kind, target, context))
            .WithName("RemoveBan").WithSummary("Lifts the ban on an IP address, a network or a subject (an edge rule's too: its ban key is reset).").ProducesProblem(StatusCodes.Status404NotFound);
    }

    private static async Task<Results<Ok<BanList>, ValidationProblem>> ListAsync(GatewayRuntime runtime, int? limit, CancellationToken cancel)
    {
        var take = limit ?? 100;
        if (take is < 1 or > MaxPage)
        {
            return AdminProblems.BadField("limit", $"must be from 1 to {MaxPage}, not {take}.");
        }

        var bans = await runtime.Bans.ListAsync(take, cancel).ConfigureAwait(false);
        return TypedResults.Ok(new BanList([.. bans.Select(BanView.Of)], runtime.Bans.MaxBans));
    }

    private static async Task<Results<Created<BanView>, ValidationProblem, ProblemHttpResult>> AddAsync(GatewayRuntime runtime, TimeProvider time, ILogger audit, BanRequest body, HttpContext context)
    {
        if (!Ban.TryParseKind(body.Kind, out var kind))
        {
            return AdminProblems.BadField("kind", $"'{body.Kind}' is not a kind of ban; give ip, cidr or subject.");
        }

        if (!Ban.TryCanonical(kind, body.Target, out var target, out var error))
        {
            return AdminProblems.BadField("target", error);
        }

        if (body.Ttl is null)
        {
            return AdminProblems.BadField("ttl", "is required: how long the ban lasts, such as 15m, 12h or 7d.");
        }

        var expiresAt = AdminInput.ExpiresAt(body.Ttl, time, "ttl", out var problem);
        if (problem is not null)
        {
            return problem;
        }

        var ban = new Ban(kind, target, Ban.AdminSource, time.GetUtcNow(), expiresAt!.Value);
        if (!await runtime.Bans.AddAsync(ban, context.RequestAborted).ConfigureAwait(false))
        {
            return TypedResults.Problem(
                detail: $"The ban store holds its most bans ({runtime.Bans.MaxBans}); lift some, or wait for them to lapse.",
                statusCode: StatusCodes.Status409Conflict,
                title: "Too many bans.");
        }

        var view = BanView.Of(ban);
        AdminAudit.Changed(audit, context.TokenName(), "add ban", ban.Id, $"until {ban.ExpiresAt:O}");
        return TypedResults.Created($"{AdminApi.BasePath}/bans/{Ban.KindName(kind)}/{target}", view);
    }

    private static async Task<Results<NoContent, ProblemHttpResult, ValidationProblem>> RemoveAsync(GatewayRuntime runtime, ILogger audit, string kind, string target, HttpContext context)
    {
        if (!Ban.TryParseKind(kind, out var banKind))
        {
            return AdminProblems.BadField("kind", $"'{kind}' is not a kind of ban; give ip, cidr or subject.");
        }

        if (!Ban.TryCanonical(banKind, Uri.UnescapeDataString(target), out var canonical, out var error))
        {
            return AdminProblems.BadField("target", error);
        }

        var removed = await runtime.Bans.RemoveAsync(banKind, canonical, context.RequestAborted).ConfigureAwait(false);
        if (removed is null)
        {
            return AdminProblems.NotFound($"No ban is in force on {Ban.KindName(banKind)} '{canonical}'.");
        }

        // An edge rule's ban is its store key too (probed before the rule): lifted only when that key is reset.
        if (removed.Source != Ban.AdminSource && runtime.Floodgate.BanCheck(removed.Source, removed.Target) is { } check
            && StoreReset.Of(runtime) is { } store)
        {
            await store.ResetAsync(check, context.RequestAborted).ConfigureAwait(false);
        }

        AdminAudit.Changed(audit, context.TokenName(), "remove ban", removed.Id, $"lifted (set by {removed.Source})");
        return TypedResults.NoContent();
    }
}

/// <summary>The body of <c>POST /admin/v1/bans</c>.</summary>
/// <param name="Kind"><c>ip</c>, <c>cidr</c> or <c>subject</c>.</param>
/// <param name="Target">The IP address, the network (<c>203.0.113.0/24</c>) or the subject.</param>
/// <param name="Ttl">How long the ban lasts, such as <c>15m</c> or <c>7d</c> (up to 3650d).</param>
internal sealed record BanRequest(
    [property: Description("ip, cidr or subject.")] string Kind,
    [property: Description("The IP address, the network (203.0.113.0/24) or the subject.")] string Target,
    [property: Description("How long the ban lasts, such as 15m or 7d (up to 3650d).")] string? Ttl);

/// <summary>A ban as the admin API shows it.</summary>
/// <param name="Kind"><c>ip</c>, <c>cidr</c> or <c>subject</c>.</param>
/// <param name="Target">The IP address, network or subject banned.</param>
/// <param name="Source"><c>admin</c>, or the edge rule whose ban it is.</param>
/// <param name="CreatedAt">When it was set.</param>
/// <param name="ExpiresAt">When it lapses.</param>
internal sealed record BanView(string Kind, string Target, string Source, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt)
{
    public static BanView Of(Ban ban) => new(Ban.KindName(ban.Kind), ban.Target, ban.Source, ban.CreatedAt, ban.ExpiresAt);
}

/// <summary>The bans in force.</summary>
/// <param name="Bans">The latest first.</param>
/// <param name="MaxBans">The most the store holds at once.</param>
internal sealed record BanList(IReadOnlyList<BanView> Bans, int MaxBans);
