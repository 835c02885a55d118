using System.Diagnostics.Metrics;
using Envoy.Service.Ratelimit.V3;
using Floodgate.Stores;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Code = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.Code;
using Unit = Envoy.Service.Ratelimit.V3.RateLimitResponse.Types.RateLimit.Types.Unit;

namespace Floodgate.Envoy.Tests;

/// <summary>
/// The reference's semantics over real gRPC on loopback and a fake clock, run on every store: exact remaining and reset
/// values, because both stores decide at the fake clock's time.
/// </summary>
public abstract partial class ShouldRateLimitSemantics
{
    private static readonly TimeSpan Ten = TimeSpan.FromSeconds(10);

    /// <summary>Creates the store under test on the server's clock.</summary>
    protected abstract IRateLimitStore CreateStore(FakeTimeProvider time);

    private async Task<EnvoyServer> Start(Action<EnvoyRateLimitOptions>? configure = null, Func<FakeTimeProvider, IRateLimitStore>? store = null)
    {
        var server = await EnvoyServer.StartAsync(TestConfig.Yaml, configure, store ?? CreateStore);
        server.Time.Advance(Ten);
        return server;
    }

    private static (string, string)[] D(params (string, string)[] entries) => entries;

    [Fact]
    public async Task A_fixed_window_counts_down_with_exact_remaining_and_reset_then_resets_at_the_window()
    {
        await using var server = await Start();
        for (uint expected = 2; expected != uint.MaxValue; expected--)
        {
            var ok = await server.CallAsync("test", D(("remote_address", "1.2.3.4")));
            Assert.Equal(Code.Ok, ok.OverallCode);
            var status = Assert.Single(ok.Statuses);
            Assert.Equal(Code.Ok, status.Code);
            Assert.Equal(expected, status.LimitRemaining);
            Assert.Equal(3u, status.CurrentLimit.RequestsPerUnit);
            Assert.Equal(Unit.Minute, status.CurrentLimit.Unit);
            Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(50)), status.DurationUntilReset);
        }

        var over = await server.CallAsync("test", D(("remote_address", "1.2.3.4")));
        Assert.Equal(Code.OverLimit, over.OverallCode);
        Assert.Equal(Code.OverLimit, over.Statuses[0].Code);
        Assert.Equal(0u, over.Statuses[0].LimitRemaining);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(50)), over.Statuses[0].DurationUntilReset);

        server.Time.Advance(TimeSpan.FromSeconds(20));
        var later = await server.CallAsync("test", D(("remote_address", "1.2.3.4")));
        Assert.Equal(Code.OverLimit, later.OverallCode);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(30)), later.Statuses[0].DurationUntilReset);

        server.Time.Advance(TimeSpan.FromSeconds(30));
        var next = await server.CallAsync("test", D(("remote_address", "1.2.3.4")));
        Assert.Equal(Code.Ok, next.OverallCode);
        Assert.Equal(2u, next.Statuses[0].LimitRemaining);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(60)), next.Statuses[0].DurationUntilReset);
    }

    [Fact]
    public async Task An_exact_value_beats_a_wildcard_which_beats_a_value_less_key()
    {
        await using var server = await Start();
        var response = await server.CallAsync("test", D(("remote_address", "10.0.0.1")), D(("remote_address", "10.0.0.7")), D(("remote_address", "9.9.9.9")));
        Assert.Equal([1u, 2u, 3u], response.Statuses.Select(s => s.CurrentLimit.RequestsPerUnit));
        Assert.Equal([0u, 1u, 2u], response.Statuses.Select(s => s.LimitRemaining));
    }

    [Fact]
    public async Task A_key_value_without_limit_or_children_is_a_whitelist()
    {
        await using var server = await Start();
        for (var i = 0; i < 5; i++)
        {
            var response = await server.CallAsync("test", D(("remote_address", "127.0.0.1")));
            Assert.Equal(Code.Ok, response.OverallCode);
            Assert.Null(response.Statuses[0].CurrentLimit);
            Assert.Equal(0u, response.Statuses[0].LimitRemaining);
        }
    }

    [Fact]
    public async Task A_wildcard_anywhere_in_the_value_matches_any_run_of_characters()
    {
        await using var server = await Start();
        var response = await server.CallAsync("test", D(("path", "/api/v1/items/42")), D(("path", "/api//items")), D(("path", "/api/v1/other")), D(("path", "/apiitems")));
        Assert.Equal(5u, response.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.Equal(5u, response.Statuses[1].CurrentLimit.RequestsPerUnit);
        Assert.Null(response.Statuses[2].CurrentLimit);
        Assert.Null(response.Statuses[3].CurrentLimit);
    }

    [Fact]
    public async Task The_request_depth_must_equal_the_config_depth()
    {
        await using var server = await Start();
        var response = await server.CallAsync(
            "test",
            D(("authenticated", "true")),
            D(("authenticated", "true"), ("client_id", "alice")),
            D(("authenticated", "true"), ("client_id", "alice"), ("extra", "x")),
            D(("remote_address", "1.2.3.4"), ("extra", "x")),
            D(("authenticated", "false"), ("client_id", "alice")));
        Assert.Null(response.Statuses[0].CurrentLimit);
        Assert.Equal(10u, response.Statuses[1].CurrentLimit.RequestsPerUnit);
        Assert.Equal(Unit.Hour, response.Statuses[1].CurrentLimit.Unit);
        Assert.Equal(9u, response.Statuses[1].LimitRemaining);
        Assert.Null(response.Statuses[2].CurrentLimit);
        Assert.Null(response.Statuses[3].CurrentLimit);
        Assert.Null(response.Statuses[4].CurrentLimit);
    }

    [Fact]
    public async Task Unlimited_answers_ok_with_the_largest_remaining_and_never_touches_the_store()
    {
        CountingStore? store = null;
        await using var server = await Start(store: time => store = new CountingStore(CreateStore(time)));
        for (var i = 0; i < 3; i++)
        {
            var response = await server.CallAsync("test", D(("client_id", "unlimited")));
            Assert.Equal(Code.Ok, response.OverallCode);
            Assert.Equal(uint.MaxValue, response.Statuses[0].LimitRemaining);
            Assert.Null(response.Statuses[0].CurrentLimit);
        }

        Assert.Equal(0, store!.Calls);
        await server.CallAsync("test", D(("client_id", "unlimited")), D(("remote_address", "1.1.1.1")));
        Assert.Equal(1, store.Checks);
    }

    [Fact]
    public async Task Replaces_removes_the_named_limit_from_the_request()
    {
        await using var server = await Start();
        var alone = await server.CallAsync("test", D(("tier", "base")));
        Assert.Equal(10u, alone.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.Equal("base", alone.Statuses[0].CurrentLimit.Name);

        var both = await server.CallAsync("test", D(("tier", "base")), D(("tier", "premium")));
        Assert.Null(both.Statuses[0].CurrentLimit);
        Assert.Equal(100u, both.Statuses[1].CurrentLimit.RequestsPerUnit);
        Assert.Equal(99u, both.Statuses[1].LimitRemaining);

        // The replaced limit was not counted.
        var again = await server.CallAsync("test", D(("tier", "base")));
        Assert.Equal(8u, again.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task Each_descriptor_is_decided_independently_and_the_request_is_over_if_any_is()
    {
        await using var server = await Start();
        var first = await server.CallAsync("test", D(("remote_address", "10.0.0.1")), D(("remote_address", "5.5.5.5")));
        Assert.Equal(Code.Ok, first.OverallCode);
        var second = await server.CallAsync("test", D(("remote_address", "10.0.0.1")), D(("remote_address", "5.5.5.5")));
        Assert.Equal(Code.OverLimit, second.OverallCode);
        Assert.Equal(Code.OverLimit, second.Statuses[0].Code);
        Assert.Equal(Code.Ok, second.Statuses[1].Code);
        Assert.Equal(1u, second.Statuses[1].LimitRemaining);

        // The descriptor that fit was counted even though the request was over the limit, as in the reference.
        var third = await server.CallAsync("test", D(("remote_address", "5.5.5.5")));
        Assert.Equal(0u, third.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task An_unknown_domain_answers_ok_for_every_descriptor()
    {
        await using var server = await Start();
        var response = await server.CallAsync("nope", D(("remote_address", "10.0.0.1")), D(("a", "b")));
        Assert.Equal(Code.Ok, response.OverallCode);
        Assert.Equal(2, response.Statuses.Count);
        Assert.All(response.Statuses, s => Assert.Equal(Code.Ok, s.Code));
        Assert.All(response.Statuses, s => Assert.Null(s.CurrentLimit));
    }

    [Fact]
    public async Task More_descriptors_than_MaxDescriptors_is_an_invalid_argument()
    {
        CountingStore? store = null;
        await using var server = await Start(o => o.MaxDescriptors = 2, time => store = new CountingStore(CreateStore(time)));
        var ok = await server.CallAsync("test", D(("remote_address", "1.1.1.1")), D(("remote_address", "1.1.1.2")));
        Assert.Equal(Code.Ok, ok.OverallCode);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.CallAsync("test", D(("remote_address", "1.1.1.1")), D(("remote_address", "1.1.1.2")), D(("remote_address", "1.1.1.3"))));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("rate limit request has 3 descriptors; at most 2 are allowed (EnvoyRateLimitOptions.MaxDescriptors)", error.Status.Detail);
        Assert.Equal(1, store!.Calls);
    }

    [Fact]
    public async Task MaxDescriptors_defaults_to_256()
    {
        await using var server = await Start();
        var request = new RateLimitRequest { Domain = "test" };
        for (var i = 0; i < 256; i++)
        {
            request.Descriptors.Add(EnvoyServer.Descriptor(("unconfigured", "v")));
        }

        Assert.Equal(256, (await server.CallAsync(request)).Statuses.Count);
        request.Descriptors.Add(EnvoyServer.Descriptor(("unconfigured", "v")));
        var error = await Assert.ThrowsAsync<RpcException>(() => server.CallAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
    }

    [Fact]
    public async Task An_empty_domain_or_descriptor_list_is_an_invalid_argument()
    {
        await using var server = await Start();
        var empty = await Assert.ThrowsAsync<RpcException>(() => server.CallAsync("", D(("a", "b"))));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        Assert.Equal("rate limit domain must not be empty", empty.Status.Detail);

        var none = await Assert.ThrowsAsync<RpcException>(() => server.CallAsync(new RateLimitRequest { Domain = "test" }));
        Assert.Equal(StatusCode.InvalidArgument, none.StatusCode);
        Assert.Equal("rate limit descriptor list must not be empty", none.Status.Detail);
    }
}

/// <summary>The semantics on the in-memory store.</summary>
public sealed class MemoryStoreSemanticsTests : ShouldRateLimitSemantics
{
    protected override IRateLimitStore CreateStore(FakeTimeProvider time) => new MemoryStore(null, time);
}
