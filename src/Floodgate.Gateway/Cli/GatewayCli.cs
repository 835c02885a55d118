using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Cli;

/// <summary>The <c>floodgate</c> command line: <c>run</c>, <c>check</c> and <c>token</c>.</summary>
public static class GatewayCli
{
    /// <summary>Builds the command tree.</summary>
    public static RootCommand Build(TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var root = new RootCommand("Floodgate: a multi-tier HTTP rate limiter in front of your API.");
        root.Add(RunCommand(output, error));
        root.Add(CheckCommand(output, error));
        root.Add(TokenCommand(output, error));
        return root;
    }

    private static Command RunCommand(TextWriter output, TextWriter error)
    {
        var policy = new Option<FileInfo>("--policy", "-p") { Description = "The policy file (YAML).", Required = true };
        var listen = new Option<Uri>("--listen") { Description = "Where the proxy listens: http://, or https:// with --certificate.", DefaultValueFactory = _ => new Uri("http://127.0.0.1:8080"), CustomParser = ParseListenAddress };
        var certificate = new Option<FileInfo?>("--certificate") { Description = "With an https:// --listen address: the PEM TLS certificate, leaf first, then intermediates; read again when it changes." };
        var certificateKey = new Option<FileInfo?>("--certificate-key") { Description = "The PEM private key of --certificate, when it is not in the certificate file." };
        var admin = new Option<Uri>("--admin") { Description = "Where /metrics, /healthz and /readyz listen.", DefaultValueFactory = _ => new Uri("http://127.0.0.1:9090"), CustomParser = ParseAddress };
        var envoy = new Option<Uri?>("--envoy") { Description = "Where Envoy's rate limit gRPC service listens (HTTP/2 cleartext); off by default.", CustomParser = ParseAddress };
        var envoyConfig = new Option<DirectoryInfo?>("--envoy-config") { Description = "The directory of envoyproxy/ratelimit YAML files the Envoy service reads; required with --envoy." };
        var demo = new Option<bool>("--demo") { Description = "Also start a local echo upstream and a demo signing key, and print curl lines to try." };
        var noWatch = new Option<bool>("--no-watch") { Description = "Do not reload the policy when the file changes." };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "The least severe log level written.", DefaultValueFactory = _ => LogLevel.Information };
        var command = new Command("run", "Run the gateway.") { policy, listen, certificate, certificateKey, admin, envoy, envoyConfig, demo, noWatch, logLevel };
        command.SetAction(async (result, cancellationToken) =>
        {
            var options = new GatewayHostOptions
            {
                PolicyPath = result.GetRequiredValue(policy).FullName,
                Listen = result.GetRequiredValue(listen),
                Certificate = result.GetValue(certificate)?.FullName,
                CertificateKey = result.GetValue(certificateKey)?.FullName,
                Admin = result.GetRequiredValue(admin),
                Envoy = result.GetValue(envoy),
                EnvoyConfigDirectory = result.GetValue(envoyConfig)?.FullName,
                WatchPolicy = !result.GetValue(noWatch),
                LogLevel = result.GetValue(logLevel),
            };
            return await RunAsync(options, result.GetValue(demo), output, error, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    private static Uri ParseAddress(System.CommandLine.Parsing.ArgumentResult result) => Parse(result, https: false);

    private static Uri ParseListenAddress(System.CommandLine.Parsing.ArgumentResult result) => Parse(result, https: true);

    private static Uri Parse(System.CommandLine.Parsing.ArgumentResult result, bool https)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || (https && uri.Scheme == Uri.UriSchemeHttps)) && uri.AbsolutePath == "/")
        {
            return uri;
        }

        result.AddError(https
            ? $"'{text}' is not an address such as http://127.0.0.1:8080 or https://0.0.0.0:8443 (http or https, an IP address or localhost, a port, no path)."
            : $"'{text}' is not an address such as http://127.0.0.1:8080 (http, an IP address or localhost, a port, no path).");
        return null!;
    }

    private static Command CheckCommand(TextWriter output, TextWriter error)
    {
        var file = new Argument<FileInfo>("policy") { Description = "The policy file to validate." };
        var command = new Command("check", "Validate a policy file without starting anything; exits non-zero with every error.") { file };
        command.SetAction(result =>
        {
            var path = result.GetRequiredValue(file).FullName;
            try
            {
                var policy = PolicyLoader.Load(path);
                // The proxy's own checks of routes and clusters, as a start or a reload runs them.
                using (var services = new ServiceCollection().AddLogging().AddRouting().AddAuthorization().AddCors().AddReverseProxy().Services.BuildServiceProvider())
                {
                    if (GatewayRuntime.ValidateProxy(policy, services.GetRequiredService<IConfigValidator>()) is { Count: > 0 } proxyErrors)
                    {
                        throw new PolicyException(proxyErrors);
                    }
                }

                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{path}: OK (version {policy.Version}): {policy.Routes.Count} route(s), {policy.Clusters.Count} cluster(s), {policy.Rules.Rules.Count} rule(s), store {policy.Store.Kind.ToString().ToLowerInvariant()}."));
                return 0;
            }
            catch (PolicyException e)
            {
                foreach (var problem in e.Errors)
                {
                    error.WriteLine(problem.ToString());
                }

                error.WriteLine($"{path}: {e.Errors.Count} error(s).");
                return 1;
            }
        });
        return command;
    }

    private static Command TokenCommand(TextWriter output, TextWriter error)
    {
        var subject = new Option<string>("--sub") { Description = "The subject (sub claim).", Required = true };
        var plan = new Option<string?>("--plan") { Description = "The plan claim, such as free or pro." };
        var ttl = new Option<TimeSpan>("--ttl") { Description = "How long the token is valid (hh:mm:ss).", DefaultValueFactory = _ => TimeSpan.FromHours(1) };
        var key = new Option<FileInfo?>("--key") { Description = "The demo signing key; default $FLOODGATE_DEMO_KEY or ~/.floodgate/demo-signing-key.pem." };
        var command = new Command("token", "Mint a token signed with the demo key, for trying the gateway started with --demo.") { subject, plan, ttl, key };
        command.SetAction(result =>
        {
            var lifetime = result.GetValue(ttl);
            if (lifetime <= TimeSpan.Zero || lifetime > TimeSpan.FromDays(30))
            {
                error.WriteLine("--ttl must be between 1 second and 30 days.");
                return 1;
            }

            try
            {
                using var demoKey = DemoKey.LoadOrCreate(result.GetValue(key)?.FullName);
                output.WriteLine(demoKey.Issue(result.GetRequiredValue(subject), result.GetValue(plan), lifetime));
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or ArgumentException)
            {
                error.WriteLine(e.Message);
                return 1;
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(GatewayHostOptions options, bool demo, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
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

            using var terminate = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                terminate.Cancel();
            });
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
