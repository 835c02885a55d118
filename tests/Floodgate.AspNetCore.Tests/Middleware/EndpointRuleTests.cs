using System.Net;
using Floodgate.AspNetCore.Endpoints;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Engine;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Middleware;

/// <summary>Rules attached to an app's endpoints with <c>WithFloodgateRule</c>: which requests they see, and when.</summary>
public sealed class EndpointRuleTests
{
    [Fact]
    public async Task Endpoint_rules_that_cannot_be_attached_fail_every_request_instead_of_being_dropped()
    {
        // Two endpoint rules named like a policy rule are both renamed after their endpoint, and the two endpoints differ
        // only by host: the names clash.
        await using var app = await TestApp.StartAsync(
            o => o.Policy = new RateLimitPolicy([new RateLimitRule("orders", RateLimitTier.Global, Limit.Gcra(Rate.Parse("100/min")))]),
            e =>
            {
                e.MapGet("/orders/{id}", (string id) => id).RequireHost("a.test").WithFloodgateRule("orders", "1/min");
                e.MapGet("/orders/{id}", (string id) => id).RequireHost("b.test").WithFloodgateRule("orders", "1/min");
            });

        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/orders/1", UriKind.Relative));
            request.Headers.Host = "a.test";
            using var response = await app.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        }

        var gate = app.App.Services.GetService(typeof(FloodgateGate)) as FloodgateGate;
        var error = Assert.Throws<InvalidOperationException>(() => gate!.AttachEndpoints(app.App.Services.GetService(typeof(EndpointDataSource)) as EndpointDataSource));
        Assert.Contains("has the name of another rule", error.Message, StringComparison.Ordinal);
        Assert.Equal(["orders"], gate!.Policy.Rules.Select(r => r.Name));
    }

    [Fact]
    public async Task Requests_that_arrive_while_the_endpoint_rules_are_attached_wait_for_them()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var engine = new RateLimitEngine(RateLimitPolicy.Empty, new MemoryStore(null, time), time);
        var gate = new FloodgateGate(engine, Microsoft.Extensions.Options.Options.Create(new FloodgateOptions()));
        var endpoint = new RouteEndpoint(
            _ => Task.CompletedTask,
            RoutePatternFactory.Parse("/orders/{id}"),
            0,
            new EndpointMetadataCollection(new FloodgateRuleMetadata("orders", Limit.Gcra(Rate.Parse("1/min"))), new HttpMethodMetadata(["GET"])),
            "orders");
        using var source = new BlockingDataSource(endpoint);

        // The first request attaches the rules, and is held while it reads the endpoints.
        var first = Task.Factory.StartNew(() => gate.AttachEndpoints(source), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(source.Entered.Wait(TimeSpan.FromSeconds(30)));

        // A second request meanwhile must not go on without the rules.
        var seen = -1;
        var second = new Thread(() =>
        {
            gate.AttachEndpoints(source);
            seen = gate.Policy.Rules.Count;
        });
        second.Start();
        SpinWait.SpinUntil(() => !second.IsAlive || (second.ThreadState & ThreadState.WaitSleepJoin) != 0, TimeSpan.FromSeconds(30));
        source.Release.Set();
        await first;
        second.Join();
        Assert.Equal(1, seen);
        Assert.Equal(1, source.Reads);
    }

    /// <summary>An endpoint source whose first read waits for <see cref="Release"/>.</summary>
    private sealed class BlockingDataSource(Endpoint endpoint) : EndpointDataSource, IDisposable
    {
        private int _reads;

        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public int Reads => Volatile.Read(ref _reads);

        public override IReadOnlyList<Endpoint> Endpoints
        {
            get
            {
                if (Interlocked.Increment(ref _reads) == 1)
                {
                    Entered.Set();
                    Release.Wait(TimeSpan.FromSeconds(30));
                }

                return [endpoint];
            }
        }

        public override IChangeToken GetChangeToken() => NullChangeToken.Singleton;

        public void Dispose()
        {
            Entered.Dispose();
            Release.Dispose();
        }
    }
}
