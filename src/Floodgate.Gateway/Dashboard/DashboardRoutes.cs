using Floodgate.Gateway.Admin;
using Floodgate.Gateway.Admin.Bans;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Operations;
using Floodgate.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.Gateway.Dashboard;

/// <summary>
/// The live dashboard on the admin port: <c>GET /admin/v1/dashboard</c>, the figures as JSON, behind the admin tokens like
/// every admin route; and <c>GET /admin/dashboard</c>, one HTML page with no data in it (open), that asks for a token and
/// reads the JSON every two seconds.
/// </summary>
internal static class DashboardRoutes
{
    /// <summary>The page's path.</summary>
    public const string PagePath = "/admin/dashboard";

    private const string PageResource = "Floodgate.Gateway.Dashboard.dashboard.html";
    private const int TopOffenders = 10;
    private const int RateSeconds = 180;
    private const int ListedBans = 50;

    /// <summary>Maps the page on <paramref name="endpoints"/> and the JSON on the admin <paramref name="group"/>.</summary>
    public static void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder group, GatewayRuntime runtime, GatewayDashboard dashboard)
    {
        var page = ReadPage();
        endpoints.MapGet(PagePath, (HttpContext context) =>
        {
            // The page holds no data; it must not be framed or cached by anything in between.
            context.Response.Headers.CacheControl = "no-store";
            context.Response.Headers.XFrameOptions = "DENY";
            context.Response.Headers.ContentSecurityPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:";
            return Results.Bytes(page, "text/html; charset=utf-8");
        });
        group.MapGet("/dashboard", (CancellationToken cancellationToken) => GetAsync(runtime, dashboard, cancellationToken))
            .WithName("GetDashboard")
            .WithTags("Dashboard")
            .WithSummary("Decisions per second, top offenders per rule, the current bans, the adaptive concurrency limits, the store's state and the policy in force.");
    }

    private static async Task<Ok<DashboardView>> GetAsync(GatewayRuntime runtime, GatewayDashboard dashboard, CancellationToken cancellationToken)
    {
        var policy = runtime.Policy;
        var (_, readiness) = await Readiness.CheckAsync(runtime, cancellationToken).ConfigureAwait(false);
        var redis = (runtime.Store as SwitchingStore)?.Current as RedisStore;
        var store = new DashboardStore(
            runtime.StoreKind,
            readiness.StoreStatus,
            Connected: readiness.StoreStatus == "reachable",
            BreakerOpen: redis is null ? null : !redis.IsCircuitClosed,
            FailureMode: policy.RedisStore?.FailureMode.ToString().ToLowerInvariant());
        var bans = await runtime.Bans.ListAsync(ListedBans, cancellationToken).ConfigureAwait(false);
        return TypedResults.Ok(new DashboardView(
            dashboard.Time.GetUtcNow(),
            new DashboardPolicy(policy.Source, policy.Version, runtime.Reloads, runtime.LastReloadError),
            store,
            dashboard.Rates.Snapshot(RateSeconds),
            dashboard.Offenders.Snapshot(TopOffenders),
            [.. bans.Select(BanView.Of)],
            runtime.Floodgate.Adaptive.Snapshot()));
    }

    private static byte[] ReadPage()
    {
        using var stream = typeof(DashboardRoutes).Assembly.GetManifestResourceStream(PageResource)
            ?? throw new InvalidOperationException($"The dashboard page {PageResource} is not embedded in the gateway.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}

/// <summary>What <c>GET /admin/v1/dashboard</c> answers.</summary>
/// <param name="GeneratedAt">When.</param>
/// <param name="Policy">The policy in force.</param>
/// <param name="Store">The store's state.</param>
/// <param name="Rates">Decisions per second by tier and outcome.</param>
/// <param name="Rules">Each rule's top offenders, rejected and (shadow) would-be rejected.</param>
/// <param name="Bans">The bans in force, the latest first (at most 50): set through the admin API or started by an edge rule.</param>
/// <param name="Adaptive">What each adaptive concurrency limit has learned on this replica (docs/adaptive-concurrency.md).</param>
internal sealed record DashboardView(DateTimeOffset GeneratedAt, DashboardPolicy Policy, DashboardStore Store, DecisionRateSnapshot Rates, IReadOnlyList<RuleOffendersView> Rules, IReadOnlyList<BanView> Bans, IReadOnlyList<Floodgate.Adaptive.AdaptiveSnapshot> Adaptive);

/// <summary>The policy in force.</summary>
/// <param name="Source">The policy file.</param>
/// <param name="Version">Its version (a hash of its text).</param>
/// <param name="Reloads">Reloads applied since start.</param>
/// <param name="LastReloadError">Why the last reload failed; <see langword="null"/> when it did not.</param>
internal sealed record DashboardPolicy(string Source, string Version, int Reloads, string? LastReloadError);

/// <summary>The store's state.</summary>
/// <param name="Kind">memory, redis or custom.</param>
/// <param name="Status">What a probe decision found, as <c>/readyz</c> reports it.</param>
/// <param name="Connected">Whether the probe reached the store.</param>
/// <param name="BreakerOpen">Whether a Redis circuit breaker is open; <see langword="null"/> for a store without one.</param>
/// <param name="FailureMode">What a Redis store does while unreachable (the policy's <c>on_failure</c>); <see langword="null"/> for the in-memory store.</param>
internal sealed record DashboardStore(string Kind, string Status, bool Connected, bool? BreakerOpen, string? FailureMode);
