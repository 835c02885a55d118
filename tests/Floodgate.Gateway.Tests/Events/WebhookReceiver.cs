using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>A webhook receiver on loopback that keeps what it was sent; or, with <c>hang</c>, never answers until disposed.</summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _arrived;

    private WebhookReceiver(WebApplication app, bool hang)
    {
        _app = app;
        Hang = hang;
        Url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook");
    }

    public Uri Url { get; }

    public bool Hang { get; }

    /// <summary>What arrived: each delivery's headers and body.</summary>
    public ConcurrentQueue<(IHeaderDictionary Headers, string Body)> Received { get; } = new();

    /// <summary>How many deliveries arrived, answered or not.</summary>
    public long Arrived => Interlocked.Read(ref _arrived);

    public static async Task<WebhookReceiver> StartAsync(bool hang = false)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        WebhookReceiver? receiver = null;
        app.MapPost("/hook", async context =>
        {
            Interlocked.Increment(ref receiver!._arrived);
            if (receiver.Hang)
            {
                await receiver._release.Task.WaitAsync(context.RequestAborted);
                return;
            }

            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            receiver.Received.Enqueue((new HeaderDictionary(context.Request.Headers.ToDictionary(h => h.Key, h => h.Value)), body));
            context.Response.StatusCode = StatusCodes.Status204NoContent;
        });
        await app.StartAsync();
        receiver = new WebhookReceiver(app, hang);
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        _release.TrySetResult();
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
    }
}
