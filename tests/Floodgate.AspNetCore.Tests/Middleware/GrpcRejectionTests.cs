using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>
/// A gRPC call the middleware refuses is answered as gRPC answers: HTTP 200, trailers-only, with the gRPC status that
/// stands for the refusal, which Grpc.Net.Client reports as such, and the retry pushback and limit headers beside it.
/// </summary>
public sealed class GrpcRejectionTests
{
    private static readonly Marshaller<string> Text = Marshallers.Create(s => Encoding.UTF8.GetBytes(s), b => Encoding.UTF8.GetString(b));
    private static readonly Method<string, string> Say = new(MethodType.Unary, "test.Echo", "Say", Text, Text);

    [Fact]
    public async Task A_call_over_a_limit_gets_RESOURCE_EXHAUSTED_with_the_pushback_and_the_limit_headers()
    {
        var rule = new RateLimitRule("per-ip", RateLimitTier.Edge, Limit.Gcra(Rate.Parse("2/min")));
        await using var app = await GrpcApp.StartAsync(o => o.Policy = new RateLimitPolicy([rule]));

        Assert.Equal("ok", await app.CallAsync("1"));
        Assert.Equal("ok", await app.CallAsync("2"));
        var limited = await Assert.ThrowsAsync<RpcException>(() => app.CallAsync("3"));

        Assert.Equal(StatusCode.ResourceExhausted, limited.StatusCode);
        Assert.Equal("The edge rule 'per-ip' is over its limit; retry after 30 seconds.", limited.Status.Detail);
        Assert.Equal("30000", limited.Trailers.GetValue("grpc-retry-pushback-ms"));
        Assert.Equal("30", limited.Trailers.GetValue("retry-after"));
        Assert.Equal("\"per-ip\";q=2;w=60", limited.Trailers.GetValue("ratelimit-policy"));
        Assert.StartsWith("\"per-ip\";r=0;t=", limited.Trailers.GetValue("ratelimit"), StringComparison.Ordinal);
        Assert.Equal(2, app.Calls);

        // The same request without gRPC's content type is still answered 429 with a problem.
        using var plain = await app.Http.PostAsync(new Uri("/test.Echo/Say", UriKind.Relative), new StringContent("x"));
        Assert.Equal(HttpStatusCode.TooManyRequests, plain.StatusCode);
        Assert.Equal(RateLimitResponses.ProblemJson, plain.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_denied_caller_gets_PERMISSION_DENIED_not_a_bare_403_and_a_forged_id_its_gRPC_status()
    {
        await using (var app = await GrpcApp.StartAsync(o => o.Access.DeniedAddresses.Add("127.0.0.0/8")))
        {
            var denied = await Assert.ThrowsAsync<RpcException>(() => app.CallAsync("1"));
            Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
            Assert.Equal("The client address is on a deny list.", denied.Status.Detail);
            Assert.Equal("-1", denied.Trailers.GetValue("grpc-retry-pushback-ms"));
            Assert.Equal(0, app.Calls);

            // Without gRPC's content type: still the 403 problem.
            using var plain = await app.Http.PostAsync(new Uri("/test.Echo/Say", UriKind.Relative), new StringContent("x"));
            Assert.Equal(HttpStatusCode.Forbidden, plain.StatusCode);
            Assert.Equal(RateLimitResponses.ProblemJson, plain.Content.Headers.ContentType?.MediaType);
        }

        var secret = Encoding.UTF8.GetBytes("k1-" + new string('g', 40));
        await using (var app = await GrpcApp.StartAsync(o =>
        {
            o.RateLimitId = new Floodgate.AspNetCore.RateLimitIds.RateLimitIdOptions { OnInvalid = Floodgate.AspNetCore.RateLimitIds.InvalidRateLimitIdAction.TooManyRequests };
            o.RateLimitId.Keys.Add(new Floodgate.AspNetCore.RateLimitIds.RateLimitIdKey("k1", secret));
        }))
        {
            var forged = Floodgate.AspNetCore.RateLimitIds.RateLimitId.Create(Encoding.UTF8.GetBytes("k1-" + new string('h', 40)), "k1", "alice");
            var refused = await Assert.ThrowsAsync<RpcException>(() => app.CallAsync("1", new Metadata { { "x-ratelimit-user-id", forged } }));
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Contains("is not one this gateway issued", refused.Status.Detail, StringComparison.Ordinal);
            Assert.Equal("ok", await app.CallAsync("2", new Metadata { { "x-ratelimit-user-id", Floodgate.AspNetCore.RateLimitIds.RateLimitId.Create(secret, "k1", "alice") } }));
        }
    }

    [Fact]
    public async Task A_call_over_capacity_gets_UNAVAILABLE_and_one_without_credentials_UNAUTHENTICATED()
    {
        var rule = new RateLimitRule("everything", RateLimitTier.Global, Limit.Gcra(Rate.Parse("1/min")));
        await using (var app = await GrpcApp.StartAsync(o => o.Policy = new RateLimitPolicy([rule])))
        {
            Assert.Equal("ok", await app.CallAsync("1"));
            var refused = await Assert.ThrowsAsync<RpcException>(() => app.CallAsync("2"));
            Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
            Assert.Equal("The global rule 'everything' is over its limit; retry after 60 seconds.", refused.Status.Detail);
            Assert.Equal("60000", refused.Trailers.GetValue("grpc-retry-pushback-ms"));
        }

        await using (var app = await GrpcApp.StartAsync(o => o.Anonymous = AnonymousPolicy.Reject))
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() => app.CallAsync("1"));
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Equal("This API requires a bearer token.", refused.Status.Detail);
            Assert.Equal("Bearer", refused.Trailers.GetValue("www-authenticate"));
            Assert.Null(refused.Trailers.GetValue("grpc-retry-pushback-ms"));
            Assert.Equal(0, app.Calls);
        }
    }

    [Fact]
    public void A_call_that_can_never_fit_is_told_not_to_retry_and_the_message_is_percent_encoded()
    {
        var context = new DefaultHttpContext();
        context.Request.ContentType = "application/grpc+proto";
        GrpcResponses.Write(context, StatusCodes.Status429TooManyRequests, "100% over 'é'", retryAfter: null);

        Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
        Assert.Equal("application/grpc+proto", context.Response.ContentType);
        Assert.Equal("8", context.Response.Headers["grpc-status"]);
        Assert.Equal("100%25 over '%C3%A9'", context.Response.Headers["grpc-message"]);
        Assert.Equal("-1", context.Response.Headers["grpc-retry-pushback-ms"]);
    }

    /// <summary>An app on real Kestrel, HTTP/2 in cleartext, with the middleware before a gRPC method written by hand.</summary>
    private sealed class GrpcApp : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly GrpcChannel _channel;
        private int _calls;

        private GrpcApp(WebApplication app)
        {
            _app = app;
            var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            _channel = GrpcChannel.ForAddress(address);
            Http = new HttpClient(new SocketsHttpHandler()) { BaseAddress = address, DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        }

        public HttpClient Http { get; }

        public int Calls => Volatile.Read(ref _calls);

        public static async Task<GrpcApp> StartAsync(Action<FloodgateOptions> configure)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
            var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
            builder.Services.AddSingleton<TimeProvider>(time);
            builder.Services.AddSingleton<IRateLimitStore>(new MemoryStore(null, time));
            builder.Services.AddFloodgate(configure);
            var app = builder.Build();
            GrpcApp? grpc = null;
            app.UseRouting();
            app.UseFloodgate();
            app.MapPost("/test.Echo/Say", context => grpc!.AnswerAsync(context));
            await app.StartAsync();
            grpc = new GrpcApp(app);
            return grpc;
        }

        public async Task<string> CallAsync(string text, Metadata? headers = null) =>
            await _channel.CreateCallInvoker().AsyncUnaryCall(Say, null, new CallOptions(headers, deadline: DateTime.UtcNow.AddSeconds(30)), text);

        public async ValueTask DisposeAsync()
        {
            _channel.Dispose();
            Http.Dispose();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        /// <summary>A unary gRPC answer, "ok": one length-prefixed message, then the OK status in the trailers.</summary>
        private async Task AnswerAsync(HttpContext context)
        {
            Interlocked.Increment(ref _calls);
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            context.Response.ContentType = "application/grpc";
            var message = new byte[5 + 2];
            BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(1), 2);
            "ok"u8.CopyTo(message.AsSpan(5));
            await context.Response.Body.WriteAsync(message, context.RequestAborted);
            context.Response.AppendTrailer("grpc-status", "0");
        }
    }
}
