using System.CommandLine;
using System.Runtime.InteropServices;
using Floodgate.Envoy.Configuration;
using Floodgate.Gateway.EnvoyMode;
using Microsoft.Extensions.Options;

namespace Floodgate.Gateway.Cli;

/// <summary>
/// <c>floodgate envoy</c>: serves only Envoy's rate limit service, with health and metrics, configured as
/// envoyproxy/ratelimit is, by its environment variables: a drop-in for the reference's image.
/// </summary>
internal static class EnvoyCommand
{
    public static Command Create(TextWriter error)
    {
        var command = new Command(
            "envoy",
            "Serve only Envoy's rate limit gRPC service, with health and metrics, configured by envoyproxy/ratelimit's environment variables (RUNTIME_ROOT, REDIS_URL, GRPC_PORT, PORT...): no policy file, no proxy. See docs/envoy.md.");
        command.SetAction(async (_, cancellationToken) =>
            await RunAsync(Environment.GetEnvironmentVariable, error, cancellationToken).ConfigureAwait(false));
        return command;
    }

    /// <summary>Reads the settings from <paramref name="variables"/>, serves until cancelled or SIGTERM; 1 when it cannot start.</summary>
    internal static async Task<int> RunAsync(Func<string, string?> variables, TextWriter error, CancellationToken cancellationToken, Action<EnvoyModeHost>? started = null)
    {
        ReferenceSettings settings;
        try
        {
            settings = ReferenceSettings.Read(variables);
        }
        catch (ReferenceSettingsException e)
        {
            foreach (var line in e.Errors)
            {
                await error.WriteLineAsync($"floodgate envoy: {line}").ConfigureAwait(false);
            }

            return 1;
        }

        EnvoyModeHost? host = null;
        try
        {
            host = await EnvoyModeHost.StartAsync(settings, cancellationToken: cancellationToken).ConfigureAwait(false);
            started?.Invoke(host);
            using var terminate = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            void Terminate(PosixSignalContext context)
            {
                context.Cancel = true;
                _ = terminate.CancelAsync();
            }

            // Ctrl+C too: System.CommandLine leaves termination signals to the commands (Program.cs).
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Terminate);
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Terminate);
            try
            {
                await Task.Delay(Timeout.Infinite, terminate.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            return 0;
        }
        catch (Exception e) when (e is EnvoyConfigException or OptionsValidationException or IOException or InvalidOperationException or ArgumentException)
        {
            await error.WriteLineAsync($"floodgate envoy: {e.Message}").ConfigureAwait(false);
            return 1;
        }
        finally
        {
            if (host is not null)
            {
                await host.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
