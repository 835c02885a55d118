using Floodgate.Events;
using Floodgate.Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Floodgate.Gateway.Admin.Events;

/// <summary>The admin route that lists recent threshold events, as every replica recorded them in the store.</summary>
internal static class EventRoutes
{
    public static void Map(RouteGroupBuilder group, GatewayRuntime runtime)
    {
        group.MapGet("/events", (int? limit, CancellationToken cancel) => ListAsync(runtime, limit, cancel))
            .WithName("ListThresholdEvents")
            .WithSummary("The latest threshold events (each raised once per subject, rule, threshold and period), the latest first.");
    }

    private static async Task<Results<Ok<ThresholdEventList>, ValidationProblem>> ListAsync(GatewayRuntime runtime, int? limit, CancellationToken cancel)
    {
        var take = limit ?? 100;
        if (take is < 1 or > MemoryThresholdLedger.Kept)
        {
            return AdminProblems.BadField("limit", $"must be from 1 to {MemoryThresholdLedger.Kept}, not {take}.");
        }

        return TypedResults.Ok(new ThresholdEventList(await runtime.Thresholds.RecentAsync(take, cancel).ConfigureAwait(false)));
    }
}

/// <summary>Recent threshold events.</summary>
/// <param name="Events">The latest first.</param>
internal sealed record ThresholdEventList(IReadOnlyList<ThresholdEvent> Events);
