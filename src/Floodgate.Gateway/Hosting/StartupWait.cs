using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>
/// What a start waits for before the proxy takes traffic: the store to connect, up to
/// <see cref="GatewayHostOptions.StoreStartupTimeout"/>, and the identity provider's keys, up to a few seconds
/// (<see cref="Identity.IdentityFactory.KeyFetchWait"/>), side by side.
/// </summary>
/// <remarks>
/// Without the wait, a Redis that is not there yet (started after the gateway, or slow to accept) has the first requests
/// answered by <c>on_failure</c>: under the default <c>open</c>, let through unlimited and unnoticed.
/// </remarks>
internal static partial class StartupWait
{
    /// <summary>What <c>/readyz</c> reports as the store's status while the start waits.</summary>
    public static string Describe(OpenedStore opened, TimeSpan timeout, TimeProvider clock)
    {
        ArgumentNullException.ThrowIfNull(clock);
        return WaitsFor(opened, timeout) is not null
            ? $"connecting; the proxy takes traffic once the store is connected, or from {(clock.GetUtcNow() + timeout).ToString("u", System.Globalization.CultureInfo.InvariantCulture)} on (store startup timeout {timeout.TotalSeconds:0.###} s)"
            : "starting";
    }

    public static async Task RunAsync(GatewayRuntime runtime, OpenedStore opened, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        try
        {
            await Task.WhenAll(WaitForStoreAsync(runtime, opened, timeout, cancellationToken), runtime.FetchIdentityKeysAsync(cancellationToken)).ConfigureAwait(false);
        }
        finally
        {
            runtime.StartupWait = null;
        }
    }

    /// <summary>The store the start waits for: a Redis store not connected yet, with a deadline; none otherwise.</summary>
    private static RedisStore? WaitsFor(OpenedStore opened, TimeSpan timeout) =>
        opened.Redis is { } redis && timeout > TimeSpan.Zero && !redis.IsConnected ? redis : null;

    private static async Task WaitForStoreAsync(GatewayRuntime runtime, OpenedStore opened, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (WaitsFor(opened, timeout) is not { } redis)
        {
            return;
        }

        Log.Waiting(runtime.Logger, opened.Kind, timeout.TotalSeconds);

        // On the system clock, whatever clock the limits run on: this bounds a wait on the network.
        using var deadline = new CancellationTokenSource(timeout, TimeProvider.System);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        try
        {
            await redis.WaitConnectedAsync(linked.Token).ConfigureAwait(false);
            Log.Connected(runtime.Logger, opened.Kind);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            var mode = runtime.Policy.RedisStore?.FailureMode ?? StoreFailureMode.Open;
            Log.NotConnected(runtime.Logger, opened.Kind, timeout.TotalSeconds, mode.ToString().ToLowerInvariant(), Consequence(mode));
        }
    }

    private static string Consequence(StoreFailureMode mode) => mode switch
    {
        StoreFailureMode.Closed => "every limited request is refused with 503",
        StoreFailureMode.Local => "each replica enforces its share of every limit in memory",
        _ => "every request is let through unlimited",
    };

    private static partial class Log
    {
        [LoggerMessage(30, LogLevel.Information, "Waiting up to {Seconds} s for the {Kind} store to connect before taking traffic")]
        public static partial void Waiting(ILogger logger, string kind, double seconds);

        [LoggerMessage(31, LogLevel.Information, "The {Kind} store is connected")]
        public static partial void Connected(ILogger logger, string kind);

        [LoggerMessage(32, LogLevel.Critical, "The {Kind} store did not connect within {Seconds} s of the start (store startup timeout): taking traffic now, and until it connects decisions follow on_failure {Mode}: {Consequence}")]
        public static partial void NotConnected(ILogger logger, string kind, double seconds, string mode, string consequence);
    }
}
