using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests.Traffic;

/// <summary>
/// An upstream on loopback for the traffic tests, on real Kestrel with no body size limit of its own:
/// <list type="bullet">
/// <item><c>POST …/upload</c> reads the body as it comes and answers how many bytes it read;</item>
/// <item><c>GET …/download/{bytes}</c> writes that many bytes, 64 KiB at a time;</item>
/// <item><c>…/ws</c> is a WebSocket that echoes each message;</item>
/// <item><c>GET …/events</c> is an event stream: headers at once, then one event when <see cref="ReleaseEvents"/> is called;</item>
/// <item>anything else answers the request's headers as JSON.</item>
/// </list>
/// </summary>
internal sealed class TrafficUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource _events = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TrafficUpstream(WebApplication app)
    {
        _app = app;
        Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public Uri Address { get; }

    /// <summary>The upstream's address without the trailing slash, for policies.</summary>
    public string Url => Address.ToString().TrimEnd('/');

    public static async Task<TrafficUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        TrafficUpstream? upstream = null;
        app.UseWebSockets();
        app.Run(context => upstream!.HandleAsync(context));
        await app.StartAsync();
        upstream = new TrafficUpstream(app);
        return upstream;
    }

    /// <summary>Lets the event stream send its event.</summary>
    public void ReleaseEvents() => _events.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        _events.TrySetCanceled();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        if (context.WebSockets.IsWebSocketRequest)
        {
            await EchoAsync(await context.WebSockets.AcceptWebSocketAsync(), context.RequestAborted);
        }
        else if (path.EndsWith("/upload", StringComparison.Ordinal))
        {
            var buffer = new byte[64 * 1024];
            long total = 0;
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                total += read;
            }

            await context.Response.WriteAsync(total.ToString(System.Globalization.CultureInfo.InvariantCulture), context.RequestAborted);
        }
        else if (path.Contains("/download/", StringComparison.Ordinal))
        {
            var remaining = long.Parse(path[(path.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            context.Response.ContentLength = remaining;
            var chunk = new byte[64 * 1024];
            while (remaining > 0)
            {
                var size = (int)Math.Min(chunk.Length, remaining);
                await context.Response.Body.WriteAsync(chunk.AsMemory(0, size), context.RequestAborted);
                remaining -= size;
            }
        }
        else if (path.EndsWith("/events", StringComparison.Ordinal))
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await _events.Task.WaitAsync(context.RequestAborted);
            await context.Response.WriteAsync("data: hello\n\n", context.RequestAborted);
        }
        else
        {
            context.Response.ContentType = "application/json";
            var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
            await context.Response.WriteAsync(JsonSerializer.Serialize(headers), context.RequestAborted);
        }
    }

    private static async Task EchoAsync(WebSocket socket, CancellationToken aborted)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var message = await socket.ReceiveAsync(buffer, aborted);
                if (message.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    return;
                }

                await socket.SendAsync(buffer.AsMemory(0, message.Count), message.MessageType, message.EndOfMessage, aborted);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            // The gateway cut the connection: what the idle timeout test expects of the short cluster.
        }
    }

    /// <summary>The headers an upstream echo reported, by lower-case name.</summary>
    public static async Task<Dictionary<string, string>> HeadersAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return JsonSerializer.Deserialize<Dictionary<string, string>>(text) ?? throw new InvalidOperationException(text);
    }
}
