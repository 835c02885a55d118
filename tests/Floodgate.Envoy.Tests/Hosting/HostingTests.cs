using Floodgate.Stores;
using Floodgate.Redis;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Floodgate.Envoy.Tests;

/// <summary>Options, store failures and hosting conventions as the gateway uses them.</summary>
public sealed class HostingTests
{
    private const string Yaml = "domain: h\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n";

    [Fact]
    public async Task Header_names_are_configurable()
    {
        await using var server = await EnvoyServer.StartAsync(Yaml, o =>
        {
            o.ResponseHeadersEnabled = true;
            o.LimitHeader = "RateLimit-Limit";
            o.RemainingHeader = "RateLimit-Remaining";
            o.ResetHeader = "RateLimit-Reset";
        });
        var response = await server.CallAsync("h", [("k", "v")]);
        Assert.Equal(["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"], response.ResponseHeadersToAdd.Select(h => h.Key));
        Assert.Equal(["2", "1", "60"], response.ResponseHeadersToAdd.Select(h => h.Value));
    }

    [Fact]
    public async Task A_store_failure_answers_by_the_store_policy_and_is_counted()
    {
        // A real Redis store in open failure mode, pointed at a free loopback port where nothing listens.
        using var store = RedisStore.Connect(new RedisStoreOptions
        {
            Configuration = $"127.0.0.1:{RedisServer.FreePort(cluster: false)}",
            KeyPrefix = "h" + Guid.NewGuid().ToString("N")[..10],
            Timeout = TimeSpan.FromMilliseconds(200),
            FailureMode = StoreFailureMode.Open,
        });
        await using var server = await EnvoyServer.StartAsync([("config.yaml", Yaml)], store: _ => store);
        using var metrics = new MetricsRecorder(server.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        var response = await server.CallAsync("h", [("k", "v")]);
        Assert.Equal(Code.Ok, response.OverallCode);
        Assert.Equal(Code.Ok, response.Statuses[0].Code);
        Assert.Equal(2u, response.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.Equal(1, metrics.Sum("store_failures", string.Empty));
        Assert.True(store.Failures >= 1, $"{store.Failures} store failures");
    }

    [Fact]
    public async Task The_conventions_of_MapFloodgateEnvoy_apply_to_both_services()
    {
        // Restricted to a host the client does not use: neither service answers on this listener.
        await using var host = await EnvoyApp.StartAsync(app => app.MapFloodgateEnvoy().RequireHost("envoy.invalid"));
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.Address);
        var limiter = new global::Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient(channel);
        var error = await Assert.ThrowsAsync<RpcException>(() => limiter.ShouldRateLimitAsync(EnvoyServer.Request("h", [("k", "v")])).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        var health = new Grpc.Health.V1.Health.HealthClient(channel);
        var healthError = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, healthError.StatusCode);
    }

    [Fact]
    public async Task Without_a_registered_store_the_service_keeps_its_own_memory_store()
    {
        await using var host = await EnvoyApp.StartAsync(app => app.MapFloodgateEnvoy());
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.Address);
        var limiter = new global::Envoy.Service.Ratelimit.V3.RateLimitService.RateLimitServiceClient(channel);
        var request = EnvoyServer.Request("h", [("k", "v")]);
        Assert.Equal(1u, (await limiter.ShouldRateLimitAsync(request)).Statuses[0].LimitRemaining);
        Assert.Equal(0u, (await limiter.ShouldRateLimitAsync(request)).Statuses[0].LimitRemaining);
    }

    /// <summary>An app of its own, the Envoy service added with defaults and mapped by the test, on a loopback h2c port.</summary>
    private sealed class EnvoyApp : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly string _directory;

        private EnvoyApp(WebApplication app, string directory, string address)
        {
            _app = app;
            _directory = directory;
            Address = address;
        }

        public string Address { get; }

        public static async Task<EnvoyApp> StartAsync(Action<WebApplication> map)
        {
            var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-host-" + Guid.NewGuid().ToString("n"));
            Directory.CreateDirectory(directory);
            await File.WriteAllTextAsync(Path.Combine(directory, "h.yaml"), Yaml);
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
            builder.Services.AddFloodgateEnvoy(o => { o.ConfigDirectory = directory; o.WatchConfigDirectory = false; });
            var app = builder.Build();
            try
            {
                map(app);
                await app.StartAsync();
                var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
                return new EnvoyApp(app, directory, address);
            }
            catch
            {
                await app.DisposeAsync();
                Directory.Delete(directory, recursive: true);
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
