using System.Net;
using System.Text;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// Requests that outlive their lease timeout, through the middleware on real Kestrel: the engine's clock is fake, so
/// three lease timeouts pass in a moment and exactly when the test says, while the sockets are real.
/// </summary>
public sealed class LongRequestTests
{
    private static readonly TimeSpan LeaseTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_streaming_response_and_a_streaming_upload_keep_their_permits_past_three_lease_timeouts()
    {
        var policy = new RateLimitPolicy([new RateLimitRule("in-flight", RateLimitTier.Global, Limit.Concurrency(2, LeaseTimeout))]);
        var endStream = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var uploadStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await TestApp.StartAsync(o => o.Policy = policy, endpoints =>
        {
            endpoints.MapGet("/stream", async (HttpContext context) =>
            {
                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync("data: open\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await endStream.Task.WaitAsync(context.RequestAborted);
                await context.Response.WriteAsync("data: end\n\n", context.RequestAborted);
            });
            endpoints.MapPost("/upload", async (HttpContext context) =>
            {
                var buffer = new byte[1024];
                long total = 0;
                int read;
                while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
                {
                    total += read;
                    uploadStarted.TrySetResult();
                }

                return total;
            });
            endpoints.MapGet("/quick", () => "ok");
        });
        using var client = new HttpClient { BaseAddress = app.Client.BaseAddress, Timeout = Bound };

        // An event stream, open: its handler waits with the response started.
        using var stream = await client.GetAsync("/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        using var events = new StreamReader(await stream.Content.ReadAsStreamAsync());
        Assert.Equal("data: open", await events.ReadLineAsync().WaitAsync(Bound));

        // An upload whose body keeps coming: its handler reads the first bytes and waits for the rest.
        var endUpload = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var upload = client.PostAsync("/upload", new HeldBody(endUpload.Task));
        await uploadStarted.Task.WaitAsync(Bound);

        // Three and a half lease timeouts: without renewal both permits would have been reclaimed after the first.
        for (var passed = TimeSpan.Zero; passed < LeaseTimeout * 3.5; passed += TimeSpan.FromMilliseconds(100))
        {
            app.Time.Advance(TimeSpan.FromMilliseconds(100));
        }

        using (var third = await client.GetAsync("/quick"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
        }

        // The upload ends: its permit is free, and taken by the next request; the stream's still holds.
        endUpload.SetResult();
        using (var uploaded = await upload)
        {
            Assert.Equal(HttpStatusCode.OK, uploaded.StatusCode);
            Assert.Equal("9", await uploaded.Content.ReadAsStringAsync());
        }

        using var second = await AdmittedAsync(client, "/stream");
        using (var full = await client.GetAsync("/quick"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, full.StatusCode);
        }

        // Both streams end: both permits are free.
        endStream.SetResult();
        Assert.Equal(string.Empty, await events.ReadLineAsync().WaitAsync(Bound));
        Assert.Equal("data: end", await events.ReadLineAsync().WaitAsync(Bound));
        await second.Content.ReadAsStringAsync();
        (await AdmittedAsync(client, "/quick")).Dispose();
    }

    /// <summary>
    /// Asks until the request is admitted, its response started: a permit is given back once the middleware's request
    /// has ended, which may be a moment after its client has read the response.
    /// </summary>
    private static async Task<HttpResponseMessage> AdmittedAsync(HttpClient client, string path)
    {
        // Bounded polling for the release that follows the response; not a sleep for correctness.
        for (var i = 0; i < 500; i++)
        {
            var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return response;
            }

            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            response.Dispose();
            await Task.Delay(20);
        }

        Assert.Fail($"{path} was not admitted within 10 seconds.");
        return null!;
    }

    /// <summary>A chunked request body: "first", then, once <paramref name="end"/> completes, "last".</summary>
    private sealed class HeldBody(Task end) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes("first"));
            await stream.FlushAsync();
            await end;
            await stream.WriteAsync(Encoding.ASCII.GetBytes("last"));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
