using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Demo;

/// <summary>A small upstream that answers every request with what it received: the demo's (and the tests') application.</summary>
public sealed class EchoUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private long _hits;

    private EchoUpstream(WebApplication app)
    {
        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Address = new Uri(address);
    }

    /// <summary>Where it listens.</summary>
    public Uri Address { get; private set; }

    /// <summary>How many requests reached it.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>How long it waits before answering a request whose path contains <c>/slow</c>, holding it in flight.</summary>
    public TimeSpan SlowDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>When set, a request whose path contains <c>/slow</c> waits for this task instead of <see cref="SlowDelay"/>.</summary>
    public Task? SlowGate { get; set; }

    /// <summary>Starts an echo upstream on <paramref name="endpoint"/> (port 0 picks a free port).</summary>
    public static async Task<EchoUpstream> StartAsync(IPEndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(endpoint);
        });
        var app = builder.Build();
        EchoUpstream? echo = null;
        app.Run(async context =>
        {
            Interlocked.Increment(ref echo!._hits);
            if (context.Request.Path.Value?.Contains("/slow", StringComparison.OrdinalIgnoreCase) == true)
            {
                await (echo.SlowGate ?? Task.Delay(echo.SlowDelay, context.RequestAborted)).WaitAsync(context.RequestAborted).ConfigureAwait(false);
            }

            context.Response.ContentType = "application/json";
            var json = new Utf8JsonWriter(context.Response.Body);
            await using var disposeJson = json.ConfigureAwait(false);
            json.WriteStartObject();
            json.WriteString("upstream", "echo");
            json.WriteString("method", context.Request.Method);
            json.WriteString("path", context.Request.Path.Value);
            json.WriteString("query", context.Request.QueryString.Value);
            json.WriteString("x_forwarded_for", context.Request.Headers["X-Forwarded-For"].ToString());
            json.WriteEndObject();
            await json.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        });
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        echo = new EchoUpstream(app);
        return echo;
    }

    /// <summary>Stops it.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
