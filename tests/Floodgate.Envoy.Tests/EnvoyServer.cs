using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Stores;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Envoy.Tests;

/// <summary>
/// A real Kestrel on 127.0.0.1, port 0, HTTP/2 cleartext, hosting the service over a temporary config directory, and a
/// gRPC client generated from the same protos.
/// </summary>
internal sealed class EnvoyServer : IAsyncDisposable
{
    /// <summary>A whole second, so that window arithmetic in the tests is exact: 2030-01-01T00:00:00Z.</summary>
    public static readonly DateTimeOffset Start = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;

    private EnvoyServer(WebApplication app, string directory, FakeTimeProvider time, GrpcChannel channel)
    {
        _app = app;
        Directory = directory;
        Time = time;
        _channel = channel;
        Client = new RateLimitService.RateLimitServiceClient(channel);
    }

    public string Directory { get; }

    public FakeTimeProvider Time { get; }

    public RateLimitService.RateLimitServiceClient Client { get; }

    public GrpcChannel Channel => _channel;

    public IServiceProvider Services => _app.Services;

    public EnvoyConfigProvider Provider => _app.Services.GetRequiredService<EnvoyConfigProvider>();

    public static Task<EnvoyServer> StartAsync(string yaml, Action<EnvoyRateLimitOptions>? configure = null, Func<FakeTimeProvider, IRateLimitStore>? store = null) =>
        StartAsync([("config.yaml", yaml)], configure, store);

    public static async Task<EnvoyServer> StartAsync(
        (string Name, string Yaml)[] files,
        Action<EnvoyRateLimitOptions>? configure = null,
        Func<FakeTimeProvider, IRateLimitStore>? store = null,
        FakeTimeProvider? time = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "floodgate-envoy-" + Guid.NewGuid().ToString("n"));
        System.IO.Directory.CreateDirectory(directory);
        foreach (var (name, yaml) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(directory, name), yaml);
        }

        time ??= new FakeTimeProvider(Start);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton(store?.Invoke(time) ?? new MemoryStore(null, time));
        builder.Services.AddFloodgateEnvoy(o =>
        {
            o.ConfigDirectory = directory;
            o.WatchConfigDirectory = false;
            configure?.Invoke(o);
        });
        var app = builder.Build();
        app.MapFloodgateEnvoy();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            System.IO.Directory.Delete(directory, recursive: true);
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        var channel = GrpcChannel.ForAddress(address);
        return new EnvoyServer(app, directory, time, channel);
    }

    public Task<RateLimitResponse> CallAsync(string domain, params (string Key, string Value)[][] descriptors) =>
        CallAsync(Request(domain, descriptors));

    public async Task<RateLimitResponse> CallAsync(RateLimitRequest request) =>
        await Client.ShouldRateLimitAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));

    public static RateLimitRequest Request(string domain, params (string Key, string Value)[][] descriptors)
    {
        var request = new RateLimitRequest { Domain = domain };
        foreach (var entries in descriptors)
        {
            request.Descriptors.Add(Descriptor(entries));
        }

        return request;
    }

    public static RateLimitDescriptor Descriptor(params (string Key, string Value)[] entries)
    {
        var descriptor = new RateLimitDescriptor();
        foreach (var (key, value) in entries)
        {
            descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = key, Value = value });
        }

        return descriptor;
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A watcher may still hold the directory for a moment; the OS temp cleaner will take it.
        }
    }
}
