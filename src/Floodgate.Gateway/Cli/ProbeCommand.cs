using System.CommandLine;

namespace Floodgate.Gateway.Cli;

/// <summary>
/// <c>floodgate probe</c>: exits 0 when an admin endpoint answers 200, 1 otherwise. The container image's health check:
/// a chiseled image has no shell, curl or wget, so the gateway probes itself.
/// </summary>
internal static class ProbeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var url = new Argument<string>("url") { Description = "The endpoint, such as http://127.0.0.1:9090/healthz.", DefaultValueFactory = _ => "http://127.0.0.1:9090/healthz" };
        var timeout = new Option<TimeSpan>("--timeout") { Description = "How long to wait for the answer (hh:mm:ss).", DefaultValueFactory = _ => TimeSpan.FromSeconds(3) };
        var command = new Command("probe", "Exit 0 when the URL answers 200 (the container health check of /healthz).") { url, timeout };
        command.SetAction(async (result, cancellationToken) =>
        {
            var text = result.GetRequiredValue(url);
            if (!Uri.TryCreate(text, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
            {
                await error.WriteLineAsync($"'{text}' is not an http:// or https:// URL.").ConfigureAwait(false);
                return 1;
            }

            using var client = new HttpClient { Timeout = result.GetValue(timeout) };
            try
            {
                using var response = await client.GetAsync(target, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync($"{target}: {(int)response.StatusCode}").ConfigureAwait(false);
                return response.IsSuccessStatusCode ? 0 : 1;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                await error.WriteLineAsync($"{target}: {e.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return command;
    }
}
