using Floodgate.Gateway.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// A gateway on loopback for one traffic test, on the system clock (YARP's timeouts are real time), with its policy in a
/// temporary file and what its proxy logs captured.
/// </summary>
internal sealed class TrafficGateway : IAsyncDisposable
{
    private readonly string _directory;

    // The host adds the provider to its logging but does not own it.
    private readonly FakeLoggerProvider _logs;

    private TrafficGateway(string directory, GatewayHost host, FakeLoggerProvider logs)
    {
        _directory = directory;
        Host = host;
        _logs = logs;
    }

    public GatewayHost Host { get; }

    /// <summary>What the gateway logs, every level down to the one it was started with.</summary>
    public FakeLogCollector Logs => _logs.Collector;

    public string PolicyPath => Path.Combine(_directory, "policy.yaml");

    /// <summary>Starts a gateway on <paramref name="policy"/>.</summary>
    /// <param name="policy">The policy text.</param>
    /// <param name="protocols">What the listener serves; the gateway's default when <see langword="null"/>.</param>
    /// <param name="certificate">A PEM certificate (with <paramref name="key"/>): the listener is https.</param>
    /// <param name="key">The certificate's PEM key.</param>
    /// <param name="time">The engine's clock; the system's when <see langword="null"/>.</param>
    /// <param name="level">The least severe level logged (to the console too).</param>
    public static async Task<TrafficGateway> StartAsync(string policy, HttpProtocols? protocols = null, string? certificate = null, string? key = null, TimeProvider? time = null, LogLevel level = LogLevel.Warning)
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-traffic-").FullName;
        var logs = new FakeLoggerProvider();
        try
        {
            var path = Path.Combine(directory, "policy.yaml");
            await File.WriteAllTextAsync(path, policy);
            var host = await GatewayHost.StartAsync(new GatewayHostOptions
            {
                PolicyPath = path,
                Listen = new Uri(certificate is null ? "http://127.0.0.1:0" : "https://127.0.0.1:0"),
                ListenProtocols = protocols,
                Certificate = certificate,
                CertificateKey = key,
                Admin = null,
                WatchPolicy = false,
                TimeProvider = time,
                LogLevel = level,
                LoggerProvider = logs,
            });
            return new TrafficGateway(directory, host, logs);
        }
        catch
        {
            logs.Dispose();
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    /// <summary>Writes <paramref name="policy"/> and reloads it; the errors, empty when it is in force.</summary>
    public async Task<IReadOnlyList<Policy.PolicyError>> ReloadAsync(string policy)
    {
        await File.WriteAllTextAsync(PolicyPath, policy);
        return Host.Reload();
    }

    public HttpClient Client(TimeSpan? timeout = null) =>
        new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = Host.ProxyAddress, Timeout = timeout ?? TimeSpan.FromSeconds(60) };

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        _logs.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
