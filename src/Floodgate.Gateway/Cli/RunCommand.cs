using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Cli;

/// <summary><c>floodgate run</c>: runs the gateway, and with <c>--demo</c> a local echo upstream and a demo signing key.</summary>
internal static class RunCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The policy file (YAML).", Required = true };
        var listen = new Option<Uri>("--listen") { Description = "Where the proxy listens: http://, or https:// with --certificate.", DefaultValueFactory = _ => new Uri("http://127.0.0.1:8080"), CustomParser = Addresses.ParseListen };
        var protocols = new Option<HttpProtocols?>("--listen-protocols") { Description = "The HTTP versions --listen serves: http1, h2c (HTTP/2 in cleartext, as gRPC clients speak it; no HTTP/1.1 then), or over https http1, http2 or http1AndHttp2. Default http1 on http://, http1AndHttp2 on https://.", CustomParser = Addresses.ParseProtocols };
        var certificate = new Option<FileInfo?>("--certificate") { Description = "With an https:// --listen address: the PEM TLS certificate, leaf first, then intermediates; read again when it changes." };
        var certificateKey = new Option<FileInfo?>("--certificate-key") { Description = "The PEM private key of --certificate, when it is not in the certificate file." };
        var admin = new Option<Uri>("--admin") { Description = "Where /metrics, /healthz, /readyz and the admin API listen; an https:// address serves --certificate (and can require client certificates: admin.client_certificates).", DefaultValueFactory = _ => new Uri("http://127.0.0.1:9090"), CustomParser = Addresses.ParseListen };
        var demo = new Option<bool>("--demo") { Description = "Also start a local echo upstream and a demo signing key, and print curl lines to try." };
        var noWatch = new Option<bool>("--no-watch") { Description = "Do not reload the policy when the file changes." };
        var storeStartupTimeout = new Option<TimeSpan>("--store-startup-timeout") { Description = "How long the start waits for the policy's Redis store to connect before taking traffic, such as 30s or 2m; 0 does not wait.", DefaultValueFactory = _ => TimeSpan.FromSeconds(30), CustomParser = ParseStoreStartupTimeout };
        var shutdownTimeout = new Option<TimeSpan>("--shutdown-timeout") { Description = "On SIGTERM, how long requests in flight may finish once the proxy stops taking connections, such as 30s; those still running then are aborted. Default 30s.", DefaultValueFactory = _ => TimeSpan.FromSeconds(30), CustomParser = r => ParseDuration(r, TimeSpan.FromHours(1)) };
        var shutdownDelay = new Option<TimeSpan>("--shutdown-delay") { Description = "On SIGTERM, how long the proxy goes on taking requests while /readyz answers 503 \"shutting down\", so that load balancers take the replica out first, such as 5s. Default 0.", DefaultValueFactory = _ => TimeSpan.Zero, CustomParser = r => ParseDuration(r, TimeSpan.FromMinutes(10)) };
        var otlp = new Option<Uri?>("--otlp-endpoint") { Description = "Export each request's rate-limit step as an OpenTelemetry span to this OTLP collector, such as http://otel-collector:4317; off by default.", CustomParser = Addresses.ParseListen };
        var otlpProtocol = new Option<string>("--otlp-protocol") { Description = "The OTLP protocol of --otlp-endpoint: grpc (port 4317) or http (HTTP/protobuf, port 4318).", DefaultValueFactory = _ => "grpc" };
        otlpProtocol.AcceptOnlyFromAmong("grpc", "http");
        var logLevel = new Option<LogLevel>("--log-level") { Description = "The least severe log level written.", DefaultValueFactory = _ => LogLevel.Information };
        var command = new Command("run", "Run the gateway.") { policy, listen, protocols, certificate, certificateKey, admin };
        EnvoyCliOptions.Add(command, "Where Envoy's rate limit gRPC service listens (HTTP/2 cleartext); off by default.");
        command.Add(demo);
        command.Add(noWatch);
        command.Add(storeStartupTimeout);
        command.Add(shutdownTimeout);
        command.Add(shutdownDelay);
        command.Add(otlp);
        command.Add(otlpProtocol);
        command.Add(logLevel);
        command.SetAction(async (result, cancellationToken) =>
            await RunAsync(Options(result), result.GetValue(demo), output, error, cancellationToken).ConfigureAwait(false));
        return command;
    }

    /// <summary>The gateway's options as a parsed <c>run</c> command line gives them.</summary>
    public static GatewayHostOptions Options(ParseResult result) => new()
    {
        PolicyPath = result.GetRequiredValue<FileInfo>("--policy").FullName,
        Listen = result.GetRequiredValue<Uri>("--listen"),
        ListenProtocols = result.GetValue<HttpProtocols?>("--listen-protocols"),
        Certificate = result.GetValue<FileInfo?>("--certificate")?.FullName,
        CertificateKey = result.GetValue<FileInfo?>("--certificate-key")?.FullName,
        Admin = result.GetRequiredValue<Uri>("--admin"),
        Envoy = result.GetValue<Uri?>("--envoy"),
        EnvoyConfigDirectory = result.GetValue<DirectoryInfo?>(EnvoyCliOptions.Config)?.FullName,
        ConfigureEnvoy = EnvoyCliOptions.Settings(result),
        WatchPolicy = !result.GetValue<bool>("--no-watch"),
        StoreStartupTimeout = result.GetValue<TimeSpan>("--store-startup-timeout"),
        ShutdownTimeout = result.GetValue<TimeSpan>("--shutdown-timeout"),
        ShutdownDelay = result.GetValue<TimeSpan>("--shutdown-delay"),
        OtlpEndpoint = result.GetValue<Uri?>("--otlp-endpoint"),
        OtlpProtocol = result.GetValue<string>("--otlp-protocol") == "http" ? OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf : OpenTelemetry.Exporter.OtlpExportProtocol.Grpc,
        LogLevel = result.GetValue<LogLevel>("--log-level"),
    };

    /// <summary>A duration such as <c>30s</c> or <c>2m</c>, up to an hour; <c>0</c> for no wait.</summary>
    private static TimeSpan ParseStoreStartupTimeout(System.CommandLine.Parsing.ArgumentResult result) => ParseDuration(result, TimeSpan.FromHours(1));

    /// <summary>A duration such as <c>30s</c> or <c>2m</c>, up to <paramref name="max"/>; <c>0</c> for none.</summary>
    private static TimeSpan ParseDuration(System.CommandLine.Parsing.ArgumentResult result, TimeSpan max)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (text.Trim() == "0")
        {
            return TimeSpan.Zero;
        }

        if (YamlReader.TryParseDuration(text, out var value) && value <= max)
        {
            return value;
        }

        result.AddError($"'{text}' is not a duration such as 30s or 2m, from 0 (no wait) to {(max >= TimeSpan.FromHours(1) ? "1h" : $"{max.TotalMinutes:0}m")}.");
        return default;
    }

    private static async Task<int> RunAsync(GatewayHostOptions options, bool demo, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        // SIGTERM (a container stopping) and Ctrl+C start a graceful shutdown: the host drains in the finally below. The
        // registrations live until the shutdown is over, so that the runtime never takes the signal's default action
        // (exit 143) meanwhile; the handler only signals, on another thread, so that the shutdown does not run inside it.
        using var terminate = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void Terminate(PosixSignalContext context)
        {
            context.Cancel = true;
            _ = terminate.CancelAsync();
        }

        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Terminate);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Terminate);
        Floodgate.AspNetCore.Identity.DemoTokenIssuer? demoKey = null;
        EchoUpstream? echo = null;
        GatewayHost? host = null;
        try
        {
            if (demo)
            {
                var policy = PolicyLoader.Load(options.PolicyPath);
                demoKey = DemoKey.LoadOrCreate();
                echo = await StartDemoUpstreamAsync(policy, cancellationToken).ConfigureAwait(false);
                var jwks = demoKey.PublicJsonWebKeySet;
                options = options with
                {
                    MapAdminEndpoints = endpoints => endpoints.MapGet(DemoKey.JwksPath, () => Results.Text(jwks, "application/json")),
                };
            }

            host = await GatewayHost.StartAsync(options, cancellationToken).ConfigureAwait(false);
            if (demoKey is not null)
            {
                PrintDemo(output, host, echo!, demoKey);
            }

            try
            {
                await Task.Delay(Timeout.Infinite, terminate.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            return 0;
        }
        catch (PolicyException e)
        {
            foreach (var problem in e.Errors)
            {
                error.WriteLine(problem.ToString());
            }

            return 1;
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException)
        {
            error.WriteLine($"floodgate: {e.Message}");
            return 1;
        }
        finally
        {
            if (host is not null)
            {
                await host.DisposeAsync().ConfigureAwait(false);
            }

            if (echo is not null)
            {
                await echo.DisposeAsync().ConfigureAwait(false);
            }

            demoKey?.Dispose();
        }
    }

    private static async Task<EchoUpstream> StartDemoUpstreamAsync(GatewayPolicy policy, CancellationToken cancellationToken)
    {
        var address = policy.Clusters.SelectMany(c => c.Destinations?.Values ?? []).Select(d => new Uri(d.Address)).FirstOrDefault(u => u.IsLoopback)
            ?? throw new PolicyException("--demo starts its echo upstream on the policy's first loopback destination, and the policy has none; use samples/quickstart.yaml.");
        var ip = address.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(address.Host.Trim('[', ']'));
        try
        {
            return await EchoUpstream.StartAsync(new IPEndPoint(ip, address.Port), cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new IOException($"the demo echo upstream cannot listen on {address}: {e.Message}", e);
        }
    }

    private static void PrintDemo(TextWriter output, GatewayHost host, EchoUpstream echo, Floodgate.AspNetCore.Identity.DemoTokenIssuer key)
    {
        var gate = host.ProxyAddress.ToString().TrimEnd('/');
        var alice = key.Issue("alice", "free", TimeSpan.FromHours(1));
        var bob = key.Issue("bob", "pro", TimeSpan.FromHours(1));
        output.WriteLine();
        output.WriteLine($"Floodgate demo: gateway {gate} -> echo upstream {echo.Address.ToString().TrimEnd('/')}");
        output.WriteLine($"Admin: {host.AdminAddress}metrics  {host.AdminAddress}readyz  (demo JWKS at {host.AdminAddress?.ToString().TrimEnd('/')}{DemoKey.JwksPath})");
        output.WriteLine();
        output.WriteLine("Paste these into another terminal:");
        output.WriteLine();
        output.WriteLine($"  ALICE={alice}");
        output.WriteLine($"  BOB={bob}");
        output.WriteLine();
        output.WriteLine("  # alice (plan free) passes, and sees her budget in the RateLimit headers:");
        output.WriteLine($"  curl -i -H \"Authorization: Bearer $ALICE\" {gate}/orders/1");
        output.WriteLine("  # ...until she is over it: 429 with Retry-After; bob (plan pro) is not limited by her use:");
        output.WriteLine($"  for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' -H \"Authorization: Bearer $ALICE\" {gate}/orders/$i; done; echo");
        output.WriteLine($"  curl -i -H \"Authorization: Bearer $BOB\" {gate}/orders/1");
        output.WriteLine("  # a bad token never reaches the upstream: 401 with WWW-Authenticate");
        output.WriteLine($"  curl -i -H \"Authorization: Bearer not.a.token\" {gate}/orders/1");
        output.WriteLine("  # mint more tokens:");
        output.WriteLine("  dotnet run --project src/Floodgate.Gateway -- token --sub carol --plan pro");
        output.WriteLine();
        output.WriteLine("Press Ctrl+C to stop.");
        output.Flush();
    }
}

