using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Floodgate.Envoy;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Cli;

/// <summary>The <c>floodgate</c> command line: <c>run</c>, <c>check</c> and <c>token</c>.</summary>
public static class GatewayCli
{
    // The Envoy service's options: each sets one EnvoyRateLimitOptions property.
    private const string EnvoyConfig = "--envoy-config";
    private const string EnvoyNoWatch = "--envoy-no-watch";
    private const string EnvoyReloadDebounce = "--envoy-reload-debounce";
    private const string EnvoyMergeDomains = "--envoy-merge-domains";
    private const string EnvoyShadowMode = "--envoy-shadow-mode";
    private const string EnvoyQuotaMode = "--envoy-quota-mode";
    private const string EnvoyResponseHeaders = "--envoy-response-headers";
    private const string EnvoyLimitHeader = "--envoy-limit-header";
    private const string EnvoyRemainingHeader = "--envoy-remaining-header";
    private const string EnvoyResetHeader = "--envoy-reset-header";
    private const string EnvoyNearLimitRatio = "--envoy-near-limit-ratio";
    private const string EnvoyMaxDescriptors = "--envoy-max-descriptors";

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
        var demo = new Option<bool>("--demo") { Description = "Also start a local echo upstream and a demo signing key, and print curl lines to try." };
        var noWatch = new Option<bool>("--no-watch") { Description = "Do not reload the policy when the file changes." };
        var logLevel = new Option<LogLevel>("--log-level") { Description = "The least severe log level written.", DefaultValueFactory = _ => LogLevel.Information };
        var command = new Command("run", "Run the gateway.") { policy, listen, certificate, certificateKey, admin };
        AddEnvoyOptions(command, "Where Envoy's rate limit gRPC service listens (HTTP/2 cleartext); off by default.");
        command.Add(demo);
        command.Add(noWatch);
        command.Add(logLevel);
        command.SetAction(async (result, cancellationToken) =>
            await RunAsync(RunOptions(result), result.GetValue(demo), output, error, cancellationToken).ConfigureAwait(false));
        return command;
    }

    /// <summary>The gateway's options as a parsed <c>run</c> command line gives them.</summary>
    internal static GatewayHostOptions RunOptions(ParseResult result) => new()
    {
        PolicyPath = result.GetRequiredValue<FileInfo>("--policy").FullName,
        Listen = result.GetRequiredValue<Uri>("--listen"),
        Certificate = result.GetValue<FileInfo?>("--certificate")?.FullName,
        CertificateKey = result.GetValue<FileInfo?>("--certificate-key")?.FullName,
        Admin = result.GetRequiredValue<Uri>("--admin"),
        Envoy = result.GetValue<Uri?>("--envoy"),
        EnvoyConfigDirectory = result.GetValue<DirectoryInfo?>(EnvoyConfig)?.FullName,
        ConfigureEnvoy = EnvoySettings(result),
        WatchPolicy = !result.GetValue<bool>("--no-watch"),
        LogLevel = result.GetValue<LogLevel>("--log-level"),
    };

    /// <summary>
    /// Adds <c>--envoy</c> and the Envoy service's other options to <paramref name="command"/>, refused as <c>run</c>
    /// refuses them: <c>check</c> takes the same ones, so that a command line is validated before it is deployed.
    /// </summary>
    private static void AddEnvoyOptions(Command command, string envoyDescription)
    {
        var envoy = new Option<Uri?>("--envoy") { Description = envoyDescription, CustomParser = ParseAddress };
        var envoyOptions = EnvoyOptions();
        command.Add(envoy);
        foreach (var option in envoyOptions)
        {
            command.Add(option);
        }

        command.Validators.Add(result => ValidateEnvoyOptions(result, envoy, envoyOptions));
    }

    /// <summary>The Envoy service's options as a parsed <c>run</c> or <c>check</c> command line gives them; <see langword="null"/> without <c>--envoy</c>.</summary>
    private static EnvoyRateLimitOptions? EnvoyServiceOptions(ParseResult result, string policyPath) =>
        result.GetValue<Uri?>("--envoy") is { } envoy
            ? new GatewayHostOptions
            {
                PolicyPath = policyPath,
                Envoy = envoy,
                EnvoyConfigDirectory = result.GetValue<DirectoryInfo?>(EnvoyConfig)?.FullName,
                ConfigureEnvoy = EnvoySettings(result),
            }.EnvoyOptions()
            : null;

    /// <summary>
    /// The options of the Envoy service besides its address: each sets one <see cref="EnvoyRateLimitOptions"/> property
    /// (and names the reference's setting), and a value is checked by that class's own validation when it is parsed.
    /// </summary>
    private static Option[] EnvoyOptions() =>
    [
        new Option<DirectoryInfo?>(EnvoyConfig) { Description = "The directory of envoyproxy/ratelimit YAML files the Envoy service reads; required with --envoy. A link to it (or to a parent) swapped for another is followed." },
        new Option<bool>(EnvoyNoWatch) { Description = "Do not reload the Envoy configuration directory when it changes (RUNTIME_WATCH_ROOT=false)." },
        new Option<TimeSpan?>(EnvoyReloadDebounce)
        {
            Description = "How long the Envoy configuration directory must stay quiet after a change before it is reloaded: 500ms by default, at most 1m.",
            CustomParser = r => ParseEnvoyValue<TimeSpan>(r, EnvoyReloadDebounce, "a duration such as 500ms or 2s", YamlReader.TryParseDuration, (o, v) => o.ReloadDebounce = v, nameof(EnvoyRateLimitOptions.ReloadDebounce)),
        },
        new Option<bool>(EnvoyMergeDomains) { Description = "Let several Envoy configuration files add descriptors to one domain (MERGE_DOMAIN_CONFIG); otherwise a domain declared twice is an error." },
        new Option<bool>(EnvoyShadowMode) { Description = "Run every Envoy rule in shadow mode: counted and measured, never answered OVER_LIMIT (SHADOW_MODE)." },
        new Option<bool>(EnvoyQuotaMode) { Description = "Make every Envoy rule a quota rule: a request is over the limit only when every descriptor it carries is (QUOTA_MODE)." },
        new Option<bool>(EnvoyResponseHeaders) { Description = "Send limit headers for Envoy to add to the response, describing the descriptor closest to its limit (LIMIT_RESPONSE_HEADERS_ENABLED)." },
        HeaderOption(EnvoyLimitHeader, "the limit", "X-RateLimit-Limit", "LIMIT_LIMIT_HEADER", (o, v) => o.LimitHeader = v, nameof(EnvoyRateLimitOptions.LimitHeader)),
        HeaderOption(EnvoyRemainingHeader, "what remains", "X-RateLimit-Remaining", "LIMIT_REMAINING_HEADER", (o, v) => o.RemainingHeader = v, nameof(EnvoyRateLimitOptions.RemainingHeader)),
        HeaderOption(EnvoyResetHeader, "the seconds until reset", "X-RateLimit-Reset", "LIMIT_RESET_HEADER", (o, v) => o.ResetHeader = v, nameof(EnvoyRateLimitOptions.ResetHeader)),
        new Option<double?>(EnvoyNearLimitRatio)
        {
            Description = "The share of a limit past which Envoy hits count as near the limit in metrics: 0.8 by default, from 0 to 1 (NEAR_LIMIT_RATIO).",
            CustomParser = r => ParseEnvoyValue<double>(r, EnvoyNearLimitRatio, "a number such as 0.8", (string text, out double value) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value), (o, v) => o.NearLimitRatio = v, nameof(EnvoyRateLimitOptions.NearLimitRatio)),
        },
        new Option<int?>(EnvoyMaxDescriptors)
        {
            Description = "The most descriptors one Envoy request may carry; more is INVALID_ARGUMENT. 256 by default, at least 1.",
            CustomParser = r => ParseEnvoyValue<int>(r, EnvoyMaxDescriptors, "a whole number such as 256", (string text, out int value) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value), (o, v) => o.MaxDescriptors = v, nameof(EnvoyRateLimitOptions.MaxDescriptors)),
        },
    ];

    private static Option<string?> HeaderOption(string name, string what, string fallback, string reference, Action<EnvoyRateLimitOptions, string> apply, string property) => new(name)
    {
        Description = $"With --envoy-response-headers: the name of the header that carries {what}; {fallback} by default ({reference}).",
        CustomParser = r => ParseEnvoyValue<string>(r, name, "a header name", (string text, out string value) => (value = text).Length > 0, apply, property),
    };

    private delegate bool TryParse<T>(string text, out T value);

    /// <summary>
    /// Parses an Envoy option's value and checks it with <see cref="EnvoyRateLimitOptions.Validate"/>, so that the command
    /// line accepts exactly what the service does; an error names the option.
    /// </summary>
    private static T? ParseEnvoyValue<T>(ArgumentResult result, string option, string example, TryParse<T> parse, Action<EnvoyRateLimitOptions, T> apply, string property)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : string.Empty;
        if (!parse(text, out var value))
        {
            result.AddError($"{option}: '{text}' is not {example}.");
            return default;
        }

        var options = new EnvoyRateLimitOptions { ConfigDirectory = "." };
        apply(options, value);
        try
        {
            options.Validate();
        }
        catch (OptionsValidationException e)
        {
            // The service's message names the property: name the option instead.
            foreach (var failure in e.Failures)
            {
                result.AddError(failure.Replace($"{nameof(EnvoyRateLimitOptions)}.{property}", option, StringComparison.Ordinal));
            }
        }

        return value;
    }

    /// <summary>Refuses Envoy options that would do nothing: without --envoy, or without the option they refine.</summary>
    private static void ValidateEnvoyOptions(CommandResult result, Option envoy, Option[] envoyOptions)
    {
        bool Given(string name) => result.GetResult(envoyOptions.First(o => o.Name == name)) is { Implicit: false };
        if (result.GetResult(envoy) is null)
        {
            foreach (var option in envoyOptions.Where(o => result.GetResult(o) is { Implicit: false }))
            {
                result.AddError($"{option.Name} applies to the Envoy service, which is off: give --envoy (and --envoy-config) too, or remove {option.Name}.");
            }

            return;
        }

        if (!Given(EnvoyConfig))
        {
            result.AddError("--envoy-config is required with --envoy: the directory of envoyproxy/ratelimit YAML files.");
        }

        foreach (var header in new[] { EnvoyLimitHeader, EnvoyRemainingHeader, EnvoyResetHeader }.Where(Given))
        {
            if (!result.GetValue<bool>(EnvoyResponseHeaders))
            {
                result.AddError($"{header} names a header that is sent only with --envoy-response-headers: add it, or remove {header}.");
            }
        }

        if (Given(EnvoyReloadDebounce) && result.GetValue<bool>(EnvoyNoWatch))
        {
            result.AddError($"{EnvoyReloadDebounce} does nothing with {EnvoyNoWatch}, which stops the reloads: remove one of them.");
        }
    }

    /// <summary>The Envoy options given on the command line, as one setter; <see langword="null"/> when none is.</summary>
    private static Action<EnvoyRateLimitOptions>? EnvoySettings(ParseResult result)
    {
        var settings = new List<Action<EnvoyRateLimitOptions>>();
        if (result.GetValue<bool>(EnvoyNoWatch))
        {
            settings.Add(o => o.WatchConfigDirectory = false);
        }

        if (result.GetValue<TimeSpan?>(EnvoyReloadDebounce) is { } debounce)
        {
            settings.Add(o => o.ReloadDebounce = debounce);
        }

        if (result.GetValue<bool>(EnvoyMergeDomains))
        {
            settings.Add(o => o.MergeDomainConfigs = true);
        }

        if (result.GetValue<bool>(EnvoyShadowMode))
        {
            settings.Add(o => o.GlobalShadowMode = true);
        }

        if (result.GetValue<bool>(EnvoyQuotaMode))
        {
            settings.Add(o => o.GlobalQuotaMode = true);
        }

        if (result.GetValue<bool>(EnvoyResponseHeaders))
        {
            settings.Add(o => o.ResponseHeadersEnabled = true);
        }

        if (result.GetValue<string?>(EnvoyLimitHeader) is { } limit)
        {
            settings.Add(o => o.LimitHeader = limit);
        }

        if (result.GetValue<string?>(EnvoyRemainingHeader) is { } remaining)
        {
            settings.Add(o => o.RemainingHeader = remaining);
        }

        if (result.GetValue<string?>(EnvoyResetHeader) is { } reset)
        {
            settings.Add(o => o.ResetHeader = reset);
        }

        if (result.GetValue<double?>(EnvoyNearLimitRatio) is { } ratio)
        {
            settings.Add(o => o.NearLimitRatio = ratio);
        }

        if (result.GetValue<int?>(EnvoyMaxDescriptors) is { } max)
        {
            settings.Add(o => o.MaxDescriptors = max);
        }

        return settings.Count == 0 ? null : options => settings.ForEach(set => set(options));
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
        var command = new Command(
            "check",
            "Validate a policy file without starting anything, and with --envoy the Envoy options and the --envoy-config directory as run would; exits non-zero with every error.")
        {
            file,
        };
        AddEnvoyOptions(command, "Validate the Envoy service's options as run would (nothing listens): --envoy-config is then required, and its directory must load.");
        command.SetAction(result =>
        {
            var path = result.GetRequiredValue(file).FullName;
            var policyValid = CheckPolicy(path, output, error);
            var envoyValid = EnvoyServiceOptions(result, path) is not { } envoy || CheckEnvoyConfig(envoy, output, error);
            return policyValid && envoyValid ? 0 : 1;
        });
        return command;
    }

    /// <summary>Loads the policy and runs the proxy's checks on it, as a start does; writes what it finds.</summary>
    private static bool CheckPolicy(string path, TextWriter output, TextWriter error)
    {
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

            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{path}: OK (version {policy.Version}): {policy.Routes.Count} route(s), {policy.Clusters.Count} cluster(s), {policy.Floodgate.Policy.Rules.Count} rule(s), store {policy.StoreKind.ToString().ToLowerInvariant()}."));
            return true;
        }
        catch (PolicyException e)
        {
            foreach (var problem in e.Errors)
            {
                error.WriteLine(problem.ToString());
            }

            error.WriteLine($"{path}: {e.Errors.Count} error(s).");
            return false;
        }
    }

    /// <summary>
    /// Loads the Envoy service's configuration directory as the service does when it starts (a directory it would refuse
    /// stops the start); writes what it finds, and warns of what the service would only log.
    /// </summary>
    private static bool CheckEnvoyConfig(EnvoyRateLimitOptions options, TextWriter output, TextWriter error)
    {
        var directory = options.ConfigDirectory;
        try
        {
            var config = Floodgate.Envoy.Configuration.EnvoyConfig.LoadDirectory(directory, options.MergeDomainConfigs);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{directory}: OK (Envoy configuration): {config.Domains.Count} domain(s), {config.RuleCount} rule(s) from {config.Files.Count} file(s)."));
            if (config.SkippedEntries.Count > 0)
            {
                error.WriteLine($"{directory}: warning: not read (only *.yaml and *.yml files directly in it are): {string.Join(", ", config.SkippedEntries)}.");
            }

            if (config.Domains.Count == 0)
            {
                error.WriteLine($"{directory}: warning: no domain is declared: the Envoy service would answer every request OK and report itself not serving.");
            }

            return true;
        }
        catch (Floodgate.Envoy.Configuration.EnvoyConfigException e)
        {
            // The message begins with the file's name: the path tells which directory it is in.
            error.WriteLine(e.FileName.Length > 0 ? Path.Join(directory, e.Message) : $"{directory}: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"{EnvoyConfig}: {e.Message}");
        }

        error.WriteLine($"{directory}: the Envoy service would not start on this directory.");
        return false;
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
