using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests.Costs;

/// <summary>
/// A real upstream on Kestrel that answers like an LLM API: <c>POST /v1/chat/completions</c> streams
/// <c>text/event-stream</c> chunks and ends with an OpenAI-style usage event, or answers JSON. The request's headers pick
/// the case: <c>x-used</c> the completion tokens to report (prompt tokens: <see cref="PromptTokens"/>),
/// <c>x-scenario</c> where and how the usage comes (<c>last</c>, <c>split</c>, <c>absent</c>, <c>malformed</c>,
/// <c>huge</c>, <c>json</c>, <c>stall</c>: a few events, then nothing until the client goes away),
/// <c>x-hold-ms</c> how long to wait before the first byte (so that calls overlap).
/// </summary>
internal sealed class LlmUpstream : IAsyncDisposable
{
    public const int PromptTokens = 100;

    private readonly WebApplication _app;
    private int _calls;
    private int _abandoned;
    private long _reported;

    private LlmUpstream(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    /// <summary>Calls that reached the upstream.</summary>
    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Calls whose client went away mid-stream.</summary>
    public int Abandoned => Volatile.Read(ref _abandoned);

    /// <summary>The tokens the upstream reported in all, over every call that sent its usage.</summary>
    public long Reported => Interlocked.Read(ref _reported);

    /// <summary>The bytes of the last response body sent, to compare with what the client received.</summary>
    public byte[] LastBody { get; private set; } = [];

    public static async Task<LlmUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var upstream = new LlmUpstream(app);
        app.MapPost("/v1/chat/completions", upstream.CompleteAsync);
        await app.StartAsync();
        upstream.Address = new Uri(app.Urls.First());
        return upstream;
    }

    private async Task CompleteAsync(HttpContext context)
    {
        Interlocked.Increment(ref _calls);
        using var body = await JsonDocument.ParseAsync(context.Request.Body);
        var used = long.Parse(context.Request.Headers["x-used"].FirstOrDefault() ?? "0", CultureInfo.InvariantCulture);
        var scenario = context.Request.Headers["x-scenario"].FirstOrDefault() ?? "last";
        if (int.TryParse(context.Request.Headers["x-hold-ms"].FirstOrDefault(), CultureInfo.InvariantCulture, out var hold))
        {
            await Task.Delay(hold);
        }

        var usage = $$"""{"prompt_tokens":{{PromptTokens}},"completion_tokens":{{used}},"total_tokens":{{PromptTokens + used}}}""";
        var sent = new MemoryStream();
        if (scenario == "json")
        {
            context.Response.ContentType = "application/json";
            await WriteAsync(context, sent, $$$"""{"id":"c1","model":"small","choices":[{"message":{"content":"a \"usage\": {\"total_tokens\": 999999} in text"}}],"usage":{{{usage}}}}""");
            Interlocked.Add(ref _reported, PromptTokens + used);
            LastBody = sent.ToArray();
            return;
        }

        context.Response.ContentType = "text/event-stream";
        for (var i = 0; i < 8; i++)
        {
            // A chunk as OpenAI streams them (usage null until the last), about 120 bytes.
            await WriteAsync(context, sent, $$$"""data: {"id":"c1","model":"small","choices":[{"delta":{"content":"token {{{i}}} \"usage\":{"}}],"usage":null}""" + "\n\n");
        }

        if (scenario == "stall")
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _abandoned);
            }

            return;
        }

        var last = scenario switch
        {
            "absent" => """data: {"id":"c1","choices":[],"usage":null}""" + "\n\n",
            "malformed" => """data: {"id":"c1","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":""" + "\n\n",
            "huge" => $$$"""data: {"id":"c1","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":{{{used}}},"details":"{{{new string('x', 10_000)}}}"}}""" + "\n\n",
            _ => $$"""data: {"id":"c1","model":"small","choices":[],"usage":{{usage}}}""" + "\n\n",
        };
        if (scenario == "split")
        {
            // The usage event arrives a few bytes at a time, each flushed on its own.
            var bytes = Encoding.UTF8.GetBytes(last);
            for (var at = 0; at < bytes.Length; at += 7)
            {
                await WriteAsync(context, sent, bytes.AsMemory(at, Math.Min(7, bytes.Length - at)));
            }
        }
        else
        {
            await WriteAsync(context, sent, last);
        }

        await WriteAsync(context, sent, "data: [DONE]\n\n");
        if (scenario is "last" or "split")
        {
            Interlocked.Add(ref _reported, PromptTokens + used);
        }

        LastBody = sent.ToArray();
    }

    private static Task WriteAsync(HttpContext context, MemoryStream sent, string text) =>
        WriteAsync(context, sent, Encoding.UTF8.GetBytes(text));

    private static async Task WriteAsync(HttpContext context, MemoryStream sent, ReadOnlyMemory<byte> bytes)
    {
        sent.Write(bytes.Span);
        await context.Response.Body.WriteAsync(bytes);
        await context.Response.Body.FlushAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
