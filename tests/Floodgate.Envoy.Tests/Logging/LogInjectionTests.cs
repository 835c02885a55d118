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
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;

namespace Floodgate.Envoy.Tests;

/// <summary>
/// What Envoy sends is text a client may control (a descriptor value is often a header or a path): the service logs the
/// request's domain escaped and cut to 256 characters, and no descriptor value at all.
/// </summary>
public sealed class LogInjectionTests
{
    private const string DeciderCategory = "Floodgate.Envoy.EnvoyRateLimitDecider";

    [Fact]
    public async Task An_unknown_domain_with_control_characters_is_logged_escaped()
    {
        using var logs = new ConsoleLines(LogLevel.Debug);
        await using var server = await LoggedEnvoy.StartAsync(logs);

        var response = await server.CallAsync(EnvoyServer.Request("evil\r\u001B[2K12:00:00 info: all good", [("remote_address", "10.0.0.1")]));

        Assert.Equal(Code.Ok, response.OverallCode);
        var line = Assert.Single(logs.Of(DeciderCategory));
        Assert.False(line.HasControl(), line.Shown);
        Assert.Contains(@"unknown domain 'evil\r\x1B[2K12:00:00 info: all good': answered OK", line.Text, StringComparison.Ordinal);
        Assert.Equal(@"evil\r\x1B[2K12:00:00 info: all good", line.Value("Domain"));
        Assert.Contains("{Domain}", line.Value("{OriginalFormat}"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_long_unknown_domain_is_logged_cut_to_256_characters()
    {
        using var logs = new ConsoleLines(LogLevel.Debug);
        await using var server = await LoggedEnvoy.StartAsync(logs);

        await server.CallAsync(EnvoyServer.Request(new string('d', 10_000), [("remote_address", "10.0.0.1")]));

        var line = Assert.Single(logs.Of(DeciderCategory));
        Assert.Equal(new string('d', 256) + "…(+9744 chars)", line.Value("Domain"));
        Assert.True(line.Text.Length < 500, $"{line.Text.Length} characters");
    }

    [Fact]
    public async Task Descriptor_values_with_control_characters_reach_no_log_line()
    {
        using var logs = new ConsoleLines(LogLevel.Debug);
        await using var server = await LoggedEnvoy.StartAsync(logs);

        // The value-less remote_address rule allows 3 a minute: the fourth call is over the limit and logged.
        var codes = new List<Code>();
        for (var i = 0; i < 4; i++)
        {
            codes.Add((await server.CallAsync(EnvoyServer.Request("test", [("remote_address", "x\r\u001B[2Kforged\u2028")]))).OverallCode);
        }

        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit], codes);
        Assert.Contains(logs.Of(DeciderCategory), l => l.Text.Contains("Over the limit in domain 'test'", StringComparison.Ordinal));
        Assert.All(logs.Lines, l => Assert.False(l.HasControl() || l.Text.Contains("forged", StringComparison.Ordinal), l.Shown));
    }

    /// <summary>The service on real Kestrel (HTTP/2 cleartext on 127.0.0.1) over <see cref="TestConfig.Yaml"/>, logging at Debug.</summary>
    private sealed class LoggedEnvoy : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly GrpcChannel _channel;
        private readonly string _directory;

        private LoggedEnvoy(WebApplication app, GrpcChannel channel, string directory)
        {
            _app = app;
            _channel = channel;
            _directory = directory;
        }

        public static async Task<LoggedEnvoy> StartAsync(ConsoleLines logs)
        {
            var directory = Directory.CreateTempSubdirectory("floodgate-envoy-logs-").FullName;
            await File.WriteAllTextAsync(Path.Combine(directory, "config.yaml"), TestConfig.Yaml);
            var time = new FakeTimeProvider(EnvoyServer.Start);
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
            builder.Logging.AddProvider(logs);
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
            builder.Services.AddSingleton<TimeProvider>(time);
            builder.Services.AddSingleton<IRateLimitStore>(new MemoryStore(null, time));
            builder.Services.AddFloodgateEnvoy(o =>
            {
                o.ConfigDirectory = directory;
                o.WatchConfigDirectory = false;
            });
            var app = builder.Build();
            app.MapFloodgateEnvoy();
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            return new LoggedEnvoy(app, GrpcChannel.ForAddress(address), directory);
        }

        public async Task<RateLimitResponse> CallAsync(RateLimitRequest request) =>
            await new RateLimitService.RateLimitServiceClient(_channel).ShouldRateLimitAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));

        public async ValueTask DisposeAsync()
        {
            _channel.Dispose();
            await _app.StopAsync();
            await _app.DisposeAsync();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
