using Floodgate.Gateway.Admin.Auth;
using Floodgate.Gateway.Admin.Bans;
using Floodgate.Gateway.Admin.Events;
using Floodgate.Gateway.Admin.KeyState;
using Floodgate.Gateway.Admin.Overrides;
using Floodgate.Gateway.Admin.Usage;
using Floodgate.Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Admin;

/// <summary>
/// The admin API, on the admin port only, under <see cref="BasePath"/>: every route needs an admin token
/// (<see cref="AdminAuthorization"/>). Each feature maps its own routes into the group.
/// </summary>
internal static class AdminApi
{
    /// <summary>The versioned path every admin route is under.</summary>
    public const string BasePath = "/admin/v1";

    /// <summary>Maps the admin routes on <paramref name="endpoints"/>.</summary>
    public static RouteGroupBuilder Map(IEndpointRouteBuilder endpoints, GatewayRuntime runtime, TimeProvider time)
    {
        var audit = endpoints.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger(AdminAudit.Category);
        var group = endpoints.MapGroup(BasePath).RequireAdmin().ProducesAdminProblems();
        group.MapGet("/status", (HttpContext context) => Status(context, runtime))
            .WithName("GetStatus")
            .WithTags("Status")
            .WithSummary("The gateway's policy and store, and the admin token the request was made with.");
        // A sub-group per feature tags its routes in the OpenAPI document (the default tag is the host application's name).
        OverrideRoutes.Map(group.MapGroup(string.Empty).WithTags("Overrides"), runtime, time, audit);
        UsageRoutes.Map(group.MapGroup(string.Empty).WithTags("Usage"), runtime, time);
        Keys.KeyRoutes.Map(group.MapGroup(string.Empty).WithTags("API keys"), runtime, time, audit);
        BanRoutes.Map(group.MapGroup(string.Empty).WithTags("Bans"), runtime, time, audit);
        KeyStateRoutes.Map(group.MapGroup(string.Empty).WithTags("Key state"), runtime, time, audit);
        EventRoutes.Map(group.MapGroup(string.Empty).WithTags("Threshold events"), runtime);
        return group;
    }

    private static Ok<AdminStatus> Status(HttpContext context, GatewayRuntime runtime)
    {
        var policy = runtime.Policy;
        return TypedResults.Ok(new AdminStatus(context.TokenName(), policy.Source, policy.Version, policy.StoreKind.ToString().ToLowerInvariant(), policy.Floodgate.Policy.Rules.Count));
    }
}

/// <summary>What <c>GET /admin/v1/status</c> answers.</summary>
/// <param name="Token">The name of the admin token the request was made with.</param>
/// <param name="Policy">The policy file.</param>
/// <param name="Version">The policy's version (a hash of its text).</param>
/// <param name="Store">The kind of store: memory or redis.</param>
/// <param name="Rules">How many rules the policy has.</param>
internal sealed record AdminStatus(string Token, string Policy, string Version, string Store, int Rules);
