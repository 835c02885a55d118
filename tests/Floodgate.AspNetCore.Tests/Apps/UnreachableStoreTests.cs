using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>README's example Redis address unreachable: the start says loudly that the open failure mode limits nothing.</summary>
public sealed class UnreachableStoreTests
{
    [Fact]
    public async Task A_Redis_store_not_connected_at_start_is_a_critical_log_naming_the_failure_mode()
    {
        // A loopback port nobody listens on: connections are refused at once.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var logs = new FakeLogCollector();
        var builder = AppHost.CreateBuilder();
        builder.Logging.AddProvider(new FakeLoggerProvider(logs));
        builder.Services.AddFloodgateRedisStore(o => o.Configuration = $"127.0.0.1:{port},connectRetry=0");
        builder.Services.AddFloodgate(o => o.AddPolicy("orders", "1/min"));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders", () => "orders").RequireFloodgate("orders");
        await using var host = await AppHost.StartAsync(app);

        var critical = Assert.Single(logs.GetSnapshot(), r => r.Level == LogLevel.Critical);
        Assert.Contains("not connected at start", critical.Message, StringComparison.Ordinal);
        Assert.Contains("failure mode open: every request is let through unlimited", critical.Message, StringComparison.Ordinal);
    }
}
