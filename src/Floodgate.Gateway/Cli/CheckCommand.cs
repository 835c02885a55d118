using System.CommandLine;
using System.Globalization;
using Floodgate.Envoy;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Cli;

/// <summary><c>floodgate check</c>: validates a policy file, and with <c>--envoy</c> the Envoy service's options, without starting anything.</summary>
internal static class CheckCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var file = new Argument<FileInfo>("policy") { Description = "The policy file to validate." };
        var command = new Command(
            "check",
            "Validate a policy file without starting anything, and with --envoy the Envoy options and the --envoy-config directory as run would; exits non-zero with every error.")
        {
            file,
        };
        EnvoyCliOptions.Add(command, "Validate the Envoy service's options as run would (nothing listens): --envoy-config is then required, and its directory must load.");
        command.SetAction(result =>
        {
            var path = result.GetRequiredValue(file).FullName;
            var policyValid = CheckPolicy(path, output, error);
            var envoyValid = EnvoyCliOptions.ServiceOptions(result, path) is not { } envoy || CheckEnvoyConfig(envoy, output, error);
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
                if (ProxyConfigCheck.Validate(policy, services.GetRequiredService<IConfigValidator>()) is { Count: > 0 } proxyErrors)
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
            error.WriteLine($"{EnvoyCliOptions.Config}: {e.Message}");
        }

        error.WriteLine($"{directory}: the Envoy service would not start on this directory.");
        return false;
    }
}
