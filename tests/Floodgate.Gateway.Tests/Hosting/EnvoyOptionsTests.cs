using System.CommandLine;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Envoy;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Hosting;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Floodgate.Gateway.Tests;

/// <summary>Every option of the Envoy service reaches it from <c>floodgate run</c>, and a bad value is refused naming the option.</summary>
public sealed class EnvoyOptionsTests : IDisposable
{
    private const string User = "domain: api\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n";
    private const string Team = "domain: api\ndescriptors:\n  - key: team\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n";
    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-envoy-options-").FullName;

    public EnvoyOptionsTests()
    {
        File.WriteAllText(Policy, "upstream: http://127.0.0.1:9\n");
        Directory.CreateDirectory(Config);
    }

    private string Policy => Path.Combine(_directory, "policy.yaml");

    private string Config => Path.Combine(_directory, "envoy");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Shadow_mode_headers_descriptor_cap_and_domain_merging_given_on_the_command_line_are_in_force()
    {
        // Two files declare the domain: only --envoy-merge-domains lets the service start on them.
        await File.WriteAllTextAsync(Path.Combine(Config, "a.yaml"), User);
        await File.WriteAllTextAsync(Path.Combine(Config, "b.yaml"), Team);
        await using var host = await StartAsync(
            "--envoy-merge-domains", "--envoy-shadow-mode", "--envoy-response-headers",
            "--envoy-limit-header", "X-Envoy-Limit", "--envoy-remaining-header", "X-Envoy-Remaining", "--envoy-reset-header", "X-Envoy-Reset",
            "--envoy-near-limit-ratio", "0.5", "--envoy-max-descriptors", "2", "--envoy-no-watch", "--envoy-hit-counting", "stop-when-over-limit");

        var options = host.EnvoyServices!.GetRequiredService<IOptions<EnvoyRateLimitOptions>>().Value;
        Assert.Equal(Config, options.ConfigDirectory);
        Assert.False(options.WatchConfigDirectory);
        Assert.True(options.MergeDomainConfigs);
        Assert.True(options.GlobalShadowMode);
        Assert.False(options.GlobalQuotaMode);
        Assert.True(options.ResponseHeadersEnabled);
        Assert.Equal(("X-Envoy-Limit", "X-Envoy-Remaining", "X-Envoy-Reset"), (options.LimitHeader, options.RemainingHeader, options.ResetHeader));
        Assert.Equal(0.5, options.NearLimitRatio);
        Assert.Equal(2, options.MaxDescriptors);
        Assert.Equal(EnvoyHitCounting.StopWhenOverLimit, options.HitCounting);
        Assert.Equal(TimeSpan.FromMilliseconds(500), options.ReloadDebounce);

        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.EnvoyAddress!);
        var client = new RateLimitService.RateLimitServiceClient(channel);

        // The headers, under the names given.
        var first = await AskAsync(client, ("user", "alice"));
        Assert.Equal(Code.Ok, first.OverallCode);
        Assert.Equal(["X-Envoy-Limit=1", "X-Envoy-Remaining=0", "X-Envoy-Reset=60"], first.ResponseHeadersToAdd.Select(h => $"{h.Key}={h.Value}"));

        // Shadow mode: the descriptor is over its limit, and the request still passes.
        var second = await AskAsync(client, ("user", "alice"));
        Assert.Equal(Code.OverLimit, second.Statuses[0].Code);
        Assert.Equal(Code.Ok, second.OverallCode);

        // Both files' descriptors are in the domain.
        Assert.Equal(5u, (await AskAsync(client, ("team", "t"))).Statuses[0].CurrentLimit.RequestsPerUnit);

        // Three descriptors are one more than the cap.
        var tooMany = await Assert.ThrowsAsync<RpcException>(() => AskAsync(client, ("user", "a"), ("user", "b"), ("user", "c")));
        Assert.Equal(StatusCode.InvalidArgument, tooMany.StatusCode);
        Assert.Equal("rate limit request has 3 descriptors; at most 2 are allowed (EnvoyRateLimitOptions.MaxDescriptors)", tooMany.Status.Detail);
    }

    [Fact]
    public async Task Quota_mode_and_the_reload_debounce_given_on_the_command_line_are_in_force_and_the_rest_keep_their_defaults()
    {
        await File.WriteAllTextAsync(Path.Combine(Config, "api.yaml"), User + "  - key: team\n    rate_limit: { unit: minute, requests_per_unit: 5 }\n");
        await using var host = await StartAsync("--envoy-quota-mode", "--envoy-reload-debounce", "2s");

        var options = host.EnvoyServices!.GetRequiredService<IOptions<EnvoyRateLimitOptions>>().Value;
        Assert.True(options.GlobalQuotaMode);
        Assert.Equal(TimeSpan.FromSeconds(2), options.ReloadDebounce);
        var defaults = new EnvoyRateLimitOptions();
        Assert.Equal(
            (defaults.WatchConfigDirectory, defaults.MergeDomainConfigs, defaults.GlobalShadowMode, defaults.ResponseHeadersEnabled, defaults.LimitHeader, defaults.RemainingHeader, defaults.ResetHeader, defaults.NearLimitRatio, defaults.MaxDescriptors, defaults.HitCounting),
            (options.WatchConfigDirectory, options.MergeDomainConfigs, options.GlobalShadowMode, options.ResponseHeadersEnabled, options.LimitHeader, options.RemainingHeader, options.ResetHeader, options.NearLimitRatio, options.MaxDescriptors, options.HitCounting));

        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.EnvoyAddress!);
        var client = new RateLimitService.RateLimitServiceClient(channel);
        Assert.Equal(Code.Ok, (await AskAsync(client, ("user", "alice"))).OverallCode);
        var alone = await AskAsync(client, ("user", "alice"));
        Assert.Equal(Code.OverLimit, alone.OverallCode);
        Assert.Empty(alone.ResponseHeadersToAdd);

        // Quota mode: one descriptor within its limit keeps the request OK, though another is over its own.
        var together = await AskAsync(client, ("user", "alice"), ("team", "t"));
        Assert.Equal([Code.OverLimit, Code.Ok], together.Statuses.Select(s => s.Code));
        Assert.Equal(Code.Ok, together.OverallCode);
    }

    [Theory]
    [InlineData(new[] { "--envoy-near-limit-ratio", "1.5" }, "--envoy-near-limit-ratio must be between 0 and 1, not 1.5.")]
    [InlineData(new[] { "--envoy-near-limit-ratio", "most" }, "--envoy-near-limit-ratio: 'most' is not a number such as 0.8.")]
    [InlineData(new[] { "--envoy-max-descriptors", "0" }, "--envoy-max-descriptors must be at least 1, not 0.")]
    [InlineData(new[] { "--envoy-max-descriptors", "many" }, "--envoy-max-descriptors: 'many' is not a whole number such as 256.")]
    [InlineData(new[] { "--envoy-reload-debounce", "2m" }, "--envoy-reload-debounce must be between 0 and 1 minute, not 00:02:00.")]
    [InlineData(new[] { "--envoy-reload-debounce", "soon" }, "--envoy-reload-debounce: 'soon' is not a duration such as 500ms or 2s.")]
    [InlineData(new[] { "--envoy-response-headers", "--envoy-limit-header", "X Limit" }, "--envoy-limit-header must be a valid HTTP header name, not 'X Limit'.")]
    [InlineData(new[] { "--envoy-response-headers", "--envoy-remaining-header", "X:Remaining" }, "--envoy-remaining-header must be a valid HTTP header name, not 'X:Remaining'.")]
    [InlineData(new[] { "--envoy-reset-header", "X-Reset" }, "--envoy-reset-header names a header that is sent only with --envoy-response-headers: add it, or remove --envoy-reset-header.")]
    [InlineData(new[] { "--envoy-hit-counting", "some" }, "--envoy-hit-counting: 'some' is not all, stop-when-over-limit or within-limit.")]
    [InlineData(new[] { "--envoy-no-watch", "--envoy-reload-debounce", "1s" }, "--envoy-reload-debounce does nothing with --envoy-no-watch, which stops the reloads: remove one of them.")]
    public void A_bad_envoy_option_is_refused_naming_it(string[] given, string error)
    {
        var result = Parse(["--envoy", "http://127.0.0.1:0", "--envoy-config", Config, .. given]);
        Assert.Equal([error], result.Errors.Select(e => e.Message));
    }

    [Fact]
    public void Envoy_options_without_the_envoy_service_or_its_directory_are_refused()
    {
        Assert.Equal(
            [
                "--envoy-config applies to the Envoy service, which is off: give --envoy (and --envoy-config) too, or remove --envoy-config.",
                "--envoy-shadow-mode applies to the Envoy service, which is off: give --envoy (and --envoy-config) too, or remove --envoy-shadow-mode.",
            ],
            Parse(["--envoy-config", Config, "--envoy-shadow-mode"]).Errors.Select(e => e.Message));
        Assert.Equal(
            ["--envoy-config is required with --envoy: the directory of envoyproxy/ratelimit YAML files."],
            Parse(["--envoy", "http://127.0.0.1:0"]).Errors.Select(e => e.Message));

        // The command fails with the message, before anything starts.
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = Parse(["--envoy", "http://127.0.0.1:0", "--envoy-config", Config, "--envoy-max-descriptors", "0"])
            .Invoke(new InvocationConfiguration { Output = output, Error = errors });
        Assert.Equal(1, code);
        Assert.Contains("--envoy-max-descriptors must be at least 1, not 0.", errors.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_host_options_refuse_envoy_settings_the_service_would_refuse()
    {
        var envoyOff = Assert.Throws<ArgumentException>(() => new GatewayHostOptions { PolicyPath = Policy, ConfigureEnvoy = o => o.GlobalShadowMode = true }.Validate());
        Assert.StartsWith("GatewayHostOptions.ConfigureEnvoy sets options of the Envoy service, which is off", envoyOff.Message, StringComparison.Ordinal);

        var bad = Assert.Throws<ArgumentException>(() => new GatewayHostOptions
        {
            PolicyPath = Policy,
            Envoy = new Uri("http://127.0.0.1:0"),
            EnvoyConfigDirectory = Config,
            ConfigureEnvoy = o => o.MaxDescriptors = 0,
        }.Validate());
        Assert.Contains("EnvoyRateLimitOptions.MaxDescriptors must be at least 1, not 0.", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_validates_the_envoy_options_as_run_does_and_loads_the_envoy_configuration_directory()
    {
        string[] envoy = ["--envoy", "http://0.0.0.0:8081", "--envoy-config", Config];
        File.WriteAllText(Path.Combine(Config, "a.yaml"), User);
        File.WriteAllText(Path.Combine(Config, "notes.txt"), "not read");

        // A full command line that run would accept and start on: both are OK, and what the service would only log is told.
        var (code, output, errors) = Check([.. envoy, "--envoy-shadow-mode", "--envoy-near-limit-ratio", "0.5"]);
        Assert.True(code == 0, errors);
        Assert.Contains($"{Policy}: OK (version ", output, StringComparison.Ordinal);
        Assert.Contains($"{Config}: OK (Envoy configuration): 1 domain(s), 1 rule(s) from 1 file(s).", output, StringComparison.Ordinal);
        Assert.Contains($"{Config}: warning: not read (only *.yaml and *.yml files directly in it are): notes.txt.", errors, StringComparison.Ordinal);

        // Two files declaring one domain load only with --envoy-merge-domains, as the service would.
        File.WriteAllText(Path.Combine(Config, "b.yaml"), Team);
        (code, _, errors) = Check(envoy);
        Assert.Equal(1, code);
        Assert.Contains(Path.Join(Config, "b.yaml: "), errors, StringComparison.Ordinal);
        Assert.Contains("api", errors, StringComparison.Ordinal);
        Assert.Contains($"{Config}: the Envoy service would not start on this directory.", errors, StringComparison.Ordinal);
        (code, output, errors) = Check([.. envoy, "--envoy-merge-domains"]);
        Assert.True(code == 0, errors);
        Assert.Contains($"{Config}: OK (Envoy configuration): 1 domain(s), 2 rule(s) from 2 file(s).", output, StringComparison.Ordinal);

        // A file the service refuses is named with its line; the policy's own errors are reported beside it.
        File.Delete(Path.Combine(Config, "b.yaml"));
        File.WriteAllText(Path.Combine(Config, "a.yaml"), User.Replace("minute", "fortnight", StringComparison.Ordinal));
        File.WriteAllText(Policy, "upstream: http://127.0.0.1:9\nedge:\n  - name: ip\n    limit: 2/fortnight\n");
        (code, _, errors) = Check(envoy);
        Assert.Equal(1, code);
        Assert.Contains(Path.Join(Config, "a.yaml: line 4: invalid rate limit unit 'fortnight'"), errors, StringComparison.Ordinal);
        Assert.Contains($"{Policy}:4:12: edge[0].limit:", errors, StringComparison.Ordinal);

        // A directory that does not exist, and one that declares no domain (the service starts, and serves nothing).
        File.WriteAllText(Policy, "upstream: http://127.0.0.1:9\n");
        var missing = Path.Combine(_directory, "missing");
        (code, _, errors) = Check(["--envoy", "http://0.0.0.0:8081", "--envoy-config", missing]);
        Assert.Equal(1, code);
        Assert.Contains($"--envoy-config: The rate limit configuration directory '{missing}' does not exist.", errors, StringComparison.Ordinal);
        File.Delete(Path.Combine(Config, "a.yaml"));
        (code, _, errors) = Check(envoy);
        Assert.True(code == 0, errors);
        Assert.Contains($"{Config}: warning: no domain is declared", errors, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_refuses_the_envoy_options_run_refuses_with_the_same_messages()
    {
        string[][] lines =
        [
            ["--envoy-config", Config, "--envoy-shadow-mode"],
            ["--envoy", "http://127.0.0.1:0"],
            ["--envoy", "http://127.0.0.1:0", "--envoy-config", Config, "--envoy-max-descriptors", "0"],
            ["--envoy", "http://127.0.0.1:0", "--envoy-config", Config, "--envoy-reset-header", "X-Reset"],
            ["--envoy", "https://127.0.0.1:0", "--envoy-config", Config],
        ];
        foreach (var line in lines)
        {
            var run = Parse(line).Errors.Select(e => e.Message).ToList();
            Assert.NotEmpty(run);
            Assert.Equal(run, GatewayCli.Build(TextWriter.Null, TextWriter.Null).Parse(["check", Policy, .. line]).Errors.Select(e => e.Message));
        }

        // The command fails with the message, and loads nothing.
        var (code, output, errors) = Check(["--envoy", "http://127.0.0.1:0", "--envoy-config", Config, "--envoy-max-descriptors", "0"]);
        Assert.Equal(1, code);
        Assert.Contains("--envoy-max-descriptors must be at least 1, not 0.", errors, StringComparison.Ordinal);
        Assert.DoesNotContain("OK", output, StringComparison.Ordinal);
    }

    private (int Code, string Output, string Errors) Check(string[] envoy)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var result = GatewayCli.Build(output, errors).Parse(["check", Policy, .. envoy]);
        var code = result.Invoke(new InvocationConfiguration { Output = output, Error = errors });
        return (code, output.ToString(), errors.ToString());
    }

    private ParseResult Parse(string[] envoy) =>
        GatewayCli.Build(TextWriter.Null, TextWriter.Null).Parse(["run", "--policy", Policy, "--listen", "http://127.0.0.1:0", "--admin", "http://127.0.0.1:0", "--no-watch", .. envoy]);

    /// <summary>Starts the gateway as <c>floodgate run</c> would with these Envoy options, on free ports.</summary>
    private async Task<GatewayHost> StartAsync(params string[] envoy)
    {
        var result = Parse(["--envoy", "http://127.0.0.1:0", "--envoy-config", Config, .. envoy]);
        Assert.Empty(result.Errors);
        return await GatewayHost.StartAsync(RunCommand.Options(result) with
        {
            Admin = null,
            TimeProvider = new FakeTimeProvider(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            LogLevel = Microsoft.Extensions.Logging.LogLevel.None,
        });
    }

    private static async Task<RateLimitResponse> AskAsync(RateLimitService.RateLimitServiceClient client, params (string Key, string Value)[] descriptors)
    {
        var request = new RateLimitRequest { Domain = "api" };
        foreach (var (key, value) in descriptors)
        {
            var descriptor = new RateLimitDescriptor();
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
            request.Descriptors.Add(descriptor);
        }

        return await client.ShouldRateLimitAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
    }
}
