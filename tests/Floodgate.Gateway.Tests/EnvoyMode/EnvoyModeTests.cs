using System.Net;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Envoy;
using Floodgate.Gateway.Cli;
using Floodgate.Gateway.EnvoyMode;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// <c>floodgate envoy</c>: the reference's environment variables, read as it reads them, and the service they start on
/// free loopback ports, in Redis (a real redis-server) or in memory, with no policy file and no proxy.
/// </summary>
public sealed class EnvoyModeTests : IDisposable
{
    private const string Budget = "domain: llm\ndescriptors:\n  - key: llm_user\n    rate_limit: { unit: day, requests_per_unit: 3 }\n";
    private readonly string _root = Directory.CreateTempSubdirectory("floodgate-envoy-mode-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static ReferenceSettings Read(params (string Name, string Value)[] variables)
    {
        var map = variables.ToDictionary(v => v.Name, v => v.Value);
        return ReferenceSettings.Read(name => map.GetValueOrDefault(name));
    }

    private static EnvoyRateLimitOptions Service(ReferenceSettings settings)
    {
        var options = new EnvoyRateLimitOptions();
        settings.ConfigureService(options);
        return options;
    }

    [Fact]
    public void With_no_variable_set_the_defaults_are_the_reference_s()
    {
        var settings = Read();
        var service = Service(settings);
        Assert.Equal(Path.Combine("/srv/runtime_data/current", "config"), service.ConfigDirectory);
        Assert.Equal(new Uri("http://0.0.0.0:8081"), settings.Grpc);
        Assert.Equal(new Uri("http://0.0.0.0:8080"), settings.Http);
        Assert.Null(settings.Prometheus);
        Assert.Equal("!/var/run/nutcracker/ratelimit.sock", settings.Redis!.Configuration);
        Assert.False(settings.Redis.OverLimitCache);
        Assert.Equal(EnvoyHitCounting.All, service.HitCounting);
        Assert.Equal(("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"), (service.LimitHeader, service.RemainingHeader, service.ResetHeader));
        Assert.False(service.ResponseHeadersEnabled || service.GlobalShadowMode || service.GlobalQuotaMode || service.MergeDomainConfigs);
        Assert.Equal(0.8, service.NearLimitRatio);
        Assert.Equal(LogLevel.Warning, settings.LogLevel);
        Assert.Contains(settings.Notes, n => n.StartsWith("USE_STATSD", StringComparison.Ordinal));
    }

    [Fact]
    public void The_shared_settings_keep_their_reference_names()
    {
        var settings = Read(
            ("RUNTIME_ROOT", "/srv/rt"), ("RUNTIME_SUBDIRECTORY", "ratelimit"), ("RUNTIME_APPDIRECTORY", "conf"),
            ("MERGE_DOMAIN_CONFIG", "true"), ("SHADOW_MODE", "1"), ("QUOTA_MODE", "T"), ("NEAR_LIMIT_RATIO", "0.5"),
            ("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "true"), ("LIMIT_RESPONSE_HEADERS_ENABLED", "True"),
            ("LIMIT_LIMIT_HEADER", "X-L"), ("LIMIT_REMAINING_HEADER", "X-R"), ("LIMIT_RESET_HEADER", "X-Z"),
            ("GRPC_HOST", "127.0.0.1"), ("GRPC_PORT", "9081"), ("HOST", "::1"), ("PORT", "9080"), ("USE_STATSD", "false"),
            ("USE_PROMETHEUS", "true"), ("PROMETHEUS_ADDR", "127.0.0.1:9999"), ("PROMETHEUS_PATH", "/stats"),
            ("LOG_LEVEL", "debug"), ("LOG_FORMAT", "json"),
            ("REDIS_SOCKET_TYPE", "tcp"), ("REDIS_TYPE", "SENTINEL"), ("REDIS_URL", "mymaster,s-0:26379,s-1:26379"),
            ("REDIS_AUTH", "app:secret"), ("REDIS_SENTINEL_AUTH", "watch"), ("REDIS_TLS", "true"), ("REDIS_TIMEOUT", "1.5s"),
            ("CACHE_KEY_PREFIX", "rl"), ("LOCAL_CACHE_SIZE_IN_BYTES", "1280000"));
        var service = Service(settings);
        Assert.Equal(Path.Combine("/srv/rt", "ratelimit", "conf"), service.ConfigDirectory);
        Assert.True(service.MergeDomainConfigs && service.GlobalShadowMode && service.GlobalQuotaMode && service.ResponseHeadersEnabled);
        Assert.Equal(0.5, service.NearLimitRatio);
        Assert.Equal(EnvoyHitCounting.StopWhenOverLimit, service.HitCounting);
        Assert.Equal(("X-L", "X-R", "X-Z"), (service.LimitHeader, service.RemainingHeader, service.ResetHeader));
        Assert.Equal(new Uri("http://127.0.0.1:9081"), settings.Grpc);
        Assert.Equal(new Uri("http://[::1]:9080"), settings.Http);
        Assert.Equal(new Uri("http://127.0.0.1:9999"), settings.Prometheus);
        Assert.Equal("/stats", settings.PrometheusPath);
        Assert.Equal((LogLevel.Debug, true), (settings.LogLevel, settings.JsonLogs));
        Assert.Empty(settings.Notes);
        var redis = settings.Redis!;
        Assert.Equal("s-0:26379,s-1:26379,serviceName=mymaster,user=app,password=secret,sentinelPassword=watch,ssl=true", redis.Configuration);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), redis.Timeout);
        Assert.Equal("rl", redis.KeyPrefix);
        Assert.True(redis.OverLimitCache);
        Assert.Equal(10_000, redis.OverLimitCacheSize);
    }

    [Fact]
    public void Every_variable_it_cannot_honour_is_refused_by_name()
    {
        var error = Assert.Throws<ReferenceSettingsException>(() => Read(
            ("CONFIG_TYPE", "GRPC_XDS_SOTW"), ("BACKEND_TYPE", "memcache"), ("NEAR_LIMIT_RATIO", "2"), ("SHADOW_MODE", "maybe"),
            ("GRPC_PORT", "http"), ("GRPC_SERVER_USE_TLS", "true"), ("LOG_LEVEL", "loud")));
        Assert.Equal(
            [
                "SHADOW_MODE: 'maybe' is not a boolean (true or false).",
                "EnvoyRateLimitOptions.NearLimitRatio must be between 0 and 1, not 2.",
                "CONFIG_TYPE=GRPC_XDS_SOTW is not supported: configuration comes from files only (RUNTIME_ROOT); xDS is not read.",
                "GRPC_SERVER_USE_TLS=true is not supported: the gRPC port is HTTP/2 cleartext; terminate TLS in front of it (a sidecar or the mesh).",
                "GRPC_PORT: 'http' is not a port (0 to 65535).",
                "BACKEND_TYPE=memcache is not supported: there is no memcached store; use redis, or memory for one replica.",
                "LOG_LEVEL: 'loud' is not one of trace, debug, info, warn, error, fatal, panic.",
            ],
            error.Errors);
        Assert.Contains("REDIS_URL", Assert.Throws<ReferenceSettingsException>(() => Read(("REDIS_SOCKET_TYPE", "tcp"), ("REDIS_URL", "a:1,b:2"))).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("10s", 10_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("250ms", 250)]
    [InlineData("1.5h", 5_400_000)]
    [InlineData("0", 0)]
    [InlineData("10", -1)]
    [InlineData("5 s", -1)]
    [InlineData("", -1)]
    public void Durations_are_read_as_Go_spells_them(string text, long milliseconds)
    {
        var parsed = GoDuration.TryParse(text, out var value);
        Assert.Equal(milliseconds >= 0, parsed);
        Assert.Equal(TimeSpan.FromMilliseconds(Math.Max(0, milliseconds)), value);
    }

    [Fact]
    public async Task A_token_budget_is_enforced_in_a_redis_server_reached_by_its_unix_socket_with_health_and_metrics_on_PORT()
    {
        var socket = Path.Combine(_root, "redis.sock");
        using var redis = RedisServer.Start("--unixsocket", socket, "--unixsocketperm", "700");
        var (grpcPort, httpPort) = (RedisServer.FreePort(cluster: false), RedisServer.FreePort(cluster: false));
        WriteConfig("ratelimit", "config");
        await using var running = await RunningAsync(
            ("RUNTIME_ROOT", _root), ("RUNTIME_SUBDIRECTORY", "ratelimit"), ("REDIS_SOCKET_TYPE", "unix"), ("REDIS_URL", socket),
            ("GRPC_HOST", "127.0.0.1"), ("GRPC_PORT", $"{grpcPort}"), ("HOST", "127.0.0.1"), ("PORT", $"{httpPort}"),
            ("LIMIT_RESPONSE_HEADERS_ENABLED", "true"), ("USE_STATSD", "false"));
        Assert.Equal(new Uri($"http://127.0.0.1:{grpcPort}/"), running.Host.GrpcAddress);

        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(running.Host.GrpcAddress);
        var client = new RateLimitService.RateLimitServiceClient(channel);
        var check = await AskAsync(client, 0);
        Assert.Equal(Code.Ok, check.OverallCode);
        Assert.Equal(["RateLimit-Limit=3", "RateLimit-Remaining=3"], check.ResponseHeadersToAdd.Take(2).Select(h => $"{h.Key}={h.Value}"));

        // The response's tokens are charged past the budget, and the next check is over it: the reference's counting.
        Assert.Equal(Code.OverLimit, (await AskAsync(client, 5)).OverallCode);
        Assert.Equal(Code.OverLimit, (await AskAsync(client, 0)).OverallCode);
        Assert.NotEqual("0", redis.Cli("DBSIZE").Trim());

        using var http = new HttpClient { BaseAddress = running.Host.HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal("OK", await http.GetStringAsync(new Uri("/healthcheck", UriKind.Relative)));
        using (var ready = await http.GetAsync(new Uri("/readyz", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Contains("store: redis: connected", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("floodgate_envoy_rate_limit_total_hits", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_memory_with_the_reference_s_shadow_and_stop_increment_settings_in_force()
    {
        WriteConfig(string.Empty, "config");
        var (grpcPort, httpPort, prometheusPort) = (RedisServer.FreePort(cluster: false), RedisServer.FreePort(cluster: false), RedisServer.FreePort(cluster: false));
        await using var running = await RunningAsync(
            ("RUNTIME_ROOT", _root), ("BACKEND_TYPE", "memory"), ("SHADOW_MODE", "true"), ("STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "true"),
            ("GRPC_HOST", "127.0.0.1"), ("GRPC_PORT", $"{grpcPort}"), ("HOST", "127.0.0.1"), ("PORT", $"{httpPort}"),
            ("USE_PROMETHEUS", "true"), ("PROMETHEUS_ADDR", $"127.0.0.1:{prometheusPort}"), ("PROMETHEUS_PATH", "/stats"));
        var options = running.Host.Services.GetRequiredService<IOptions<EnvoyRateLimitOptions>>().Value;
        Assert.Equal((true, EnvoyHitCounting.StopWhenOverLimit), (options.GlobalShadowMode, options.HitCounting));

        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(running.Host.GrpcAddress);
        var client = new RateLimitService.RateLimitServiceClient(channel);
        var over = await AskAsync(client, 5);
        Assert.Equal(Code.OverLimit, over.Statuses[0].Code);
        Assert.Equal(Code.Ok, over.OverallCode);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Contains("floodgate_envoy_global_shadow_mode", await http.GetStringAsync(new Uri(running.Host.PrometheusAddress!, "/stats")), StringComparison.Ordinal);
        using var ready = await http.GetAsync(new Uri(running.Host.HttpAddress, "/readyz"));
        Assert.Contains("store: memory", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_configuration_directory_that_does_not_load_stops_the_start_naming_the_file()
    {
        Directory.CreateDirectory(Path.Combine(_root, "config"));
        await File.WriteAllTextAsync(Path.Combine(_root, "config", "bad.yaml"), "domain: llm\ndescriptors:\n  - key: a\n    rate_limit: { unit: fortnight, requests_per_unit: 1 }\n");
        var map = new Dictionary<string, string>
        {
            ["RUNTIME_ROOT"] = _root, ["BACKEND_TYPE"] = "memory", ["GRPC_HOST"] = "127.0.0.1", ["GRPC_PORT"] = "0", ["HOST"] = "127.0.0.1", ["PORT"] = "0",
        };
        var error = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var code = await EnvoyCommand.RunAsync(name => map.GetValueOrDefault(name), error, timeout.Token);
        Assert.Equal(1, code);
        Assert.Contains("bad.yaml", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("fortnight", error.ToString(), StringComparison.Ordinal);

        var refused = new StringWriter();
        Assert.Equal(1, await EnvoyCommand.RunAsync(name => name == "BACKEND_TYPE" ? "memcache" : null, refused, timeout.Token));
        Assert.StartsWith("floodgate envoy: BACKEND_TYPE=memcache is not supported", refused.ToString(), StringComparison.Ordinal);
    }

    private void WriteConfig(string subdirectory, string app)
    {
        var directory = Path.Combine(_root, subdirectory, app);
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "llm.yaml"), Budget);
    }

    private static async Task<RateLimitResponse> AskAsync(RateLimitService.RateLimitServiceClient client, uint hits)
    {
        var descriptor = new RateLimitDescriptor { HitsAddend = hits };
        descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = "llm_user", Value = "alice" });
        var request = new RateLimitRequest { Domain = "llm" };
        request.Descriptors.Add(descriptor);
        return await client.ShouldRateLimitAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
    }

    /// <summary>Runs <c>floodgate envoy</c> as the command does, with these variables, until disposed.</summary>
    private static async Task<Running> RunningAsync(params (string Name, string Value)[] variables)
    {
        var map = variables.ToDictionary(v => v.Name, v => v.Value);
        var started = new TaskCompletionSource<EnvoyModeHost>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stop = new CancellationTokenSource();
        var error = new StringWriter();
        var run = EnvoyCommand.RunAsync(name => map.GetValueOrDefault(name), error, stop.Token, started.SetResult);
        var first = await Task.WhenAny(started.Task, run).WaitAsync(TimeSpan.FromSeconds(60));
        if (first == run)
        {
            throw new InvalidOperationException($"floodgate envoy stopped with {await run}: {error}");
        }

        return new Running(await started.Task, run, stop);
    }

    private sealed class Running(EnvoyModeHost host, Task<int> run, CancellationTokenSource stop) : IAsyncDisposable
    {
        public EnvoyModeHost Host { get; } = host;

        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
            stop.Dispose();
        }
    }
}
