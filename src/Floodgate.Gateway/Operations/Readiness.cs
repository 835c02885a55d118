using System.Text.Json.Serialization;
using Floodgate.Gateway.Hosting;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Gateway.Operations;

/// <summary>What <c>/readyz</c> checks: the policy in force, and whether the store answers.</summary>
internal static class Readiness
{
    private static readonly Limit ProbeLimit = Limit.Gcra(new Rate(1, 1, RateUnit.Second));
    private static readonly StoreKey ProbeKey = StoreKey.Create("floodgate:readiness", "probe");

    public static async ValueTask<(bool Ready, ReadinessStatus Status)> CheckAsync(GatewayRuntime runtime, CancellationToken cancellationToken)
    {
        var policy = runtime.Policy;
        var checks = new[] { new RateLimitCheck(ProbeLimit, ProbeKey, 0, false) };
        var outcomes = new StoreOutcome[1];
        string store;
        var ready = true;
        try
        {
            await runtime.Store.DecideAsync(checks, outcomes, cancellationToken).ConfigureAwait(false);
            if (outcomes[0].IsStoreFailure)
            {
                var mode = policy.RedisStore?.FailureMode ?? StoreFailureMode.Open;
                store = $"unreachable; on_failure {mode.ToString().ToLowerInvariant()} in force";
                ready = mode != StoreFailureMode.Closed;
            }
            else
            {
                store = "reachable";
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            store = $"failed: {e.Message}";
            ready = false;
        }

        return (ready, new ReadinessStatus(ready ? "ready" : "not ready", policy.Source, policy.Version, runtime.Reloads, runtime.LastReloadError, runtime.StoreKind, store));
    }
}

/// <summary>What <c>/readyz</c> answers.</summary>
internal sealed record ReadinessStatus(
    string Status,
    string Policy,
    string Version,
    int Reloads,
    string? LastReloadError,
    string Store,
    string StoreStatus);

[JsonSerializable(typeof(ReadinessStatus))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
internal sealed partial class ReadinessJson : JsonSerializerContext;
