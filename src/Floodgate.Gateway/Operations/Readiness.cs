using System.Globalization;
using System.Text.Json.Serialization;
using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Hosting;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Gateway.Operations;

/// <summary>
/// What <c>/readyz</c> checks: the policy in force, whether the start-up wait for the store is over, whether the store
/// answers, and whether the identity provider's signing keys are in hand.
/// </summary>
internal static class Readiness
{
    private static readonly Limit ProbeLimit = Limit.Gcra(new Rate(1, 1, RateUnit.Second));
    private static readonly StoreKey ProbeKey = StoreKey.Create("floodgate:readiness", "probe");

    public static async ValueTask<(bool Ready, ReadinessStatus Status)> CheckAsync(GatewayRuntime runtime, CancellationToken cancellationToken)
    {
        var policy = runtime.Policy;
        if (runtime.ShuttingDown)
        {
            // Out of rotation before the port closes; the store and identity are no longer the question.
            return (false, new ReadinessStatus("shutting down", policy.Source, policy.Version, runtime.Reloads, runtime.LastReloadError, runtime.StoreKind, "not checked: shutting down", null));
        }

        var (storeReady, store) = runtime.StartupWait is { } waiting ? (false, waiting) : await CheckStoreAsync(runtime, cancellationToken).ConfigureAwait(false);
        var (identityReady, identity) = CheckIdentity(runtime.JwtResolver);
        var ready = storeReady && identityReady;
        return (ready, new ReadinessStatus(ready ? "ready" : "not ready", policy.Source, policy.Version, runtime.Reloads, runtime.LastReloadError, runtime.StoreKind, store, identity));
    }

    private static async ValueTask<(bool Ready, string Status)> CheckStoreAsync(GatewayRuntime runtime, CancellationToken cancellationToken)
    {
        var checks = new[] { new RateLimitCheck(ProbeLimit, ProbeKey, 0, false) };
        var outcomes = new StoreOutcome[1];
        try
        {
            await runtime.Store.DecideAsync(checks, outcomes, cancellationToken).ConfigureAwait(false);
            if (outcomes[0].IsStoreFailure)
            {
                var mode = runtime.Policy.RedisStore?.FailureMode ?? StoreFailureMode.Open;
                return (mode != StoreFailureMode.Closed, $"unreachable; on_failure {mode.ToString().ToLowerInvariant()} in force");
            }

            return (true, "reachable");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return (false, $"failed: {e.Message}");
        }
    }

    /// <summary>
    /// Not ready while the identity provider's keys were never fetched: a token only they can verify is answered 503.
    /// Keys fetched once stay in force through a failed refresh, so that is reported but leaves the replica ready: taking
    /// it out of rotation would not make its answers any better.
    /// </summary>
    private static (bool Ready, string? Status) CheckIdentity(IIdentityResolver? identity)
    {
        if (identity is not JwtIdentityResolver jwt)
        {
            return (true, null);
        }

        if (jwt.KeyStatus is not { } keys)
        {
            return (true, "static keys");
        }

        return keys switch
        {
            { HasKeys: true, Error: null } => (true, $"keys from {keys.Address} fetched at {Time(keys.FetchedAt)}"),
            { HasKeys: true } => (true, $"keys from {keys.Address} fetched at {Time(keys.FetchedAt)} stay in force; refreshing them failed at {Time(keys.FailedAt)}: {keys.Error} Next attempt at {Time(keys.NextAttempt)}."),
            { Error: not null } => (false, $"signing keys cannot be fetched from {keys.Address}: {keys.Error} Tokens only they can verify are answered 503; next attempt at {Time(keys.NextAttempt)}."),
            _ => (false, $"signing keys not fetched yet from {keys.Address}"),
        };
    }

    private static string Time(DateTimeOffset? time) => time?.ToString("u", CultureInfo.InvariantCulture) ?? "(unknown)";
}

/// <summary>What <c>/readyz</c> answers.</summary>
internal sealed record ReadinessStatus(
    string Status,
    string Policy,
    string Version,
    int Reloads,
    string? LastReloadError,
    string Store,
    string StoreStatus,
    string? IdentityStatus);

[JsonSerializable(typeof(ReadinessStatus))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
internal sealed partial class ReadinessJson : JsonSerializerContext;
