using System.Net;
using Envoy.Extensions.Common.Ratelimit.V3;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Gateway.Demo;
using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Operations;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests;

public sealed class OperationsTests
{
    [Fact]
    public async Task The_admin_port_serves_health_readiness_and_metrics()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: ip
                limit: 1/min
            """);
        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/a"));

        Assert.Equal("ok\n", await gate.Admin.GetStringAsync("/healthz"));
        var ready = await gate.ReadinessAsync();
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        Assert.Equal("reachable", ready.GetProperty("store_status").GetString());

        var metrics = await gate.Admin.GetStringAsync("/metrics");
        Assert.Contains("floodgate_decisions_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("outcome=\"rejected\",rule=\"ip\",tier=\"edge\"", metrics, StringComparison.Ordinal);
        Assert.Contains("floodgate_proxy_duration_seconds_bucket{", metrics, StringComparison.Ordinal);
        Assert.Contains("dotnet_gc_heap_total_allocated_bytes_total{otel_scope_name=\"System.Runtime\"}", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_an_unreachable_upstream_fails_are_answered_502_and_counted_by_route_and_error()
    {
        // A port nothing listens on: taken, then released.
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var gate = await TestGateway.StartAsync($"upstream: http://127.0.0.1:{port}\n");

        Statuses.Expect([502, 502, 502], await gate.StatusesAsync(3, "/a"));
        var metrics = await gate.Admin.GetStringAsync("/metrics");
        Assert.Contains("floodgate_proxy_errors_total{otel_scope_name=\"Floodgate.Gateway\",error=\"Request\",route=\"upstream\"} 3", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public void Forwarding_failures_are_logged_within_the_budget_and_each_line_counts_those_left_out_while_client_aborts_go_to_debug()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logger = new FakeLogger();
        var failures = new ForwardingFailures(logger, time);
        var context = FailedRequest(new Failure(), 502);

        // Clients that went away first: logged at Debug only, and outside the budget.
        var aborted = FailedRequest(new Failure(Yarp.ReverseProxy.Forwarder.ForwarderError.RequestCanceled, new TaskCanceledException()), 200);
        for (var i = 0; i < 30; i++)
        {
            failures.Report(aborted, "upstream");
        }

        var logged = logger.Collector.GetSnapshot(clear: true);
        Assert.Equal(30, logged.Count);
        Assert.All(logged, record => Assert.Equal(LogLevel.Debug, record.Level));
        Assert.Equal("Forwarding GET /a (route upstream) stopped: RequestCanceled, the client went away", logged[0].Message);

        for (var i = 0; i < 100; i++)
        {
            failures.Report(context, "upstream");
        }

        logged = logger.Collector.GetSnapshot();
        Assert.Equal(20, logged.Count);
        Assert.All(logged, record => Assert.Equal(LogLevel.Warning, record.Level));
        Assert.Equal("Forwarding GET /a (route upstream) failed: Request: Connection refused; answered 502 (0 earlier failures not logged)", logged[0].Message);

        time.Advance(TimeSpan.FromSeconds(1));
        failures.Report(context, "upstream");
        Assert.EndsWith("(80 earlier failures not logged)", logger.Collector.GetSnapshot()[20].Message, StringComparison.Ordinal);

        // A request that did not fail is not reported.
        var fine = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        failures.Report(fine, "upstream");
        Assert.Equal(21, logger.Collector.Count);
    }

    /// <summary>A GET /a that failed as <paramref name="failure"/> says, answered <paramref name="status"/>.</summary>
    private static Microsoft.AspNetCore.Http.DefaultHttpContext FailedRequest(Failure failure, int status)
    {
        var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Path = "/a";
        context.Response.StatusCode = status;
        context.Features.Set<Yarp.ReverseProxy.Forwarder.IForwarderErrorFeature>(failure);
        return context;
    }

    private sealed class Failure(Yarp.ReverseProxy.Forwarder.ForwarderError error, Exception exception) : Yarp.ReverseProxy.Forwarder.IForwarderErrorFeature
    {
        public Failure()
            : this(Yarp.ReverseProxy.Forwarder.ForwarderError.Request, new HttpRequestException("Connection refused"))
        {
        }

        public Yarp.ReverseProxy.Forwarder.ForwarderError Error => error;

        public Exception? Exception => exception;
    }

    [Fact]
    public async Task The_envoy_service_runs_on_its_own_h2c_port_and_decides_in_the_gateway_s_store()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-envoy-").FullName;
        await using var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        try
        {
            await using var host = await StartWithEnvoyAsync(directory, $"upstream: {upstream.Address}\n");
            Assert.NotNull(host.EnvoyAddress);
            Assert.NotEqual(host.ProxyAddress.Port, host.EnvoyAddress.Port);
            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.EnvoyAddress);
            var client = new RateLimitService.RateLimitServiceClient(channel);
            Assert.Equal([RateLimitResponse.Types.Code.Ok, RateLimitResponse.Types.Code.Ok, RateLimitResponse.Types.Code.OverLimit], await AskAsync(client, 3));

            // The proxy still answers on its own port.
            using var http = new HttpClient { BaseAddress = host.ProxyAddress };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/x")).StatusCode);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task The_envoy_service_follows_a_reload_that_changes_the_store()
    {
        using var redis = RedisServer.Start();
        var directory = Directory.CreateTempSubdirectory("floodgate-envoy-").FullName;
        await using var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        try
        {
            await using var host = await StartWithEnvoyAsync(directory, $"upstream: {upstream.Address}\n");
            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.EnvoyAddress!);
            var client = new RateLimitService.RateLimitServiceClient(channel);
            Assert.Equal([RateLimitResponse.Types.Code.Ok, RateLimitResponse.Types.Code.Ok, RateLimitResponse.Types.Code.OverLimit], await AskAsync(client, 3));

            await File.WriteAllTextAsync(
                Path.Combine(directory, "policy.yaml"),
                $"upstream: {upstream.Address}\nstore: {{ kind: redis, configuration: \"{redis.Configuration}\", on_failure: closed, timeout: 2s, key_prefix: envoyswitch }}\n");
            Assert.Empty(host.Reload());

            // A new budget, kept in Redis.
            Assert.Equal([RateLimitResponse.Types.Code.Ok, RateLimitResponse.Types.Code.Ok, RateLimitResponse.Types.Code.OverLimit], await AskAsync(client, 3));
            Assert.NotEmpty(redis.Cli("--scan", "--pattern", "envoyswitch:*"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>A gateway with the Envoy service on, its descriptors allowing user=alice 2 requests a minute.</summary>
    private static async Task<GatewayHost> StartWithEnvoyAsync(string directory, string policy)
    {
        await File.WriteAllTextAsync(Path.Combine(directory, "policy.yaml"), policy);
        Directory.CreateDirectory(Path.Combine(directory, "envoy"));
        await File.WriteAllTextAsync(Path.Combine(directory, "envoy", "api.yaml"), "domain: api\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n");
        return await GatewayHost.StartAsync(new GatewayHostOptions
        {
            PolicyPath = Path.Combine(directory, "policy.yaml"),
            Listen = new Uri("http://127.0.0.1:0"),
            Admin = null,
            Envoy = new Uri("http://127.0.0.1:0"),
            EnvoyConfigDirectory = Path.Combine(directory, "envoy"),
            TimeProvider = new FakeTimeProvider(DateTimeOffset.UtcNow),
            WatchPolicy = false,
            LogLevel = LogLevel.Warning,
        });
    }

    /// <summary>Asks whether user=alice in domain api is over its limit, <paramref name="times"/> times in a row.</summary>
    private static async Task<List<RateLimitResponse.Types.Code>> AskAsync(RateLimitService.RateLimitServiceClient client, int times)
    {
        var request = new RateLimitRequest { Domain = "api" };
        var descriptor = new RateLimitDescriptor();
        descriptor.Entries.Add(new RateLimitDescriptor.Types.Entry { Key = "user", Value = "alice" });
        request.Descriptors.Add(descriptor);
        var codes = new List<RateLimitResponse.Types.Code>();
        for (var i = 0; i < times; i++)
        {
            codes.Add((await client.ShouldRateLimitAsync(request, deadline: DateTime.UtcNow.AddSeconds(30))).OverallCode);
        }

        return codes;
    }
}
