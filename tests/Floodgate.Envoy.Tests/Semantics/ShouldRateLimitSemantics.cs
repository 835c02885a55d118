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
public abstract class ShouldRateLimitSemantics
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

    [Fact]
    public async Task A_limit_override_replaces_the_configured_limit_even_for_an_unconfigured_key()
    {
        await using var server = await Start();
        var request = EnvoyServer.Request("test", D(("remote_address", "9.9.9.9")), D(("unconfigured", "x")));
        foreach (var descriptor in request.Descriptors)
        {
            descriptor.Limit = new() { RequestsPerUnit = 2, Unit = global::Envoy.Type.V3.RateLimitUnit.Second };
        }

        var first = await server.CallAsync(request);
        Assert.All(first.Statuses, s => Assert.Equal(2u, s.CurrentLimit.RequestsPerUnit));
        Assert.All(first.Statuses, s => Assert.Equal(Unit.Second, s.CurrentLimit.Unit));
        Assert.All(first.Statuses, s => Assert.Equal(1u, s.LimitRemaining));
        Assert.All(first.Statuses, s => Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(1)), s.DurationUntilReset));
        await server.CallAsync(request);
        var third = await server.CallAsync(request);
        Assert.Equal(Code.OverLimit, third.OverallCode);

        request.Descriptors[0].Limit.Unit = global::Envoy.Type.V3.RateLimitUnit.Unknown;
        var invalid = await Assert.ThrowsAsync<RpcException>(() => server.CallAsync(request));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Contains("descriptor 0", invalid.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_limit_override_and_a_configured_rule_on_the_same_entries_keep_separate_counts()
    {
        await using var server = await Start();
        var overridden = EnvoyServer.Request("test", D(("remote_address", "5.5.5.5")));
        overridden.Descriptors[0].Limit = new() { RequestsPerUnit = 2, Unit = global::Envoy.Type.V3.RateLimitUnit.Second };
        for (uint expected = 2; expected != uint.MaxValue; expected--)
        {
            var viaOverride = await server.CallAsync(overridden);
            Assert.Equal(Code.Ok, viaOverride.OverallCode);
            Assert.Equal(2u, viaOverride.Statuses[0].CurrentLimit.RequestsPerUnit);
            Assert.Equal(Unit.Second, viaOverride.Statuses[0].CurrentLimit.Unit);
            Assert.Equal(1u, viaOverride.Statuses[0].LimitRemaining);
            server.Time.Advance(TimeSpan.FromSeconds(1));

            var configured = await server.CallAsync("test", D(("remote_address", "5.5.5.5")));
            Assert.Equal(Code.Ok, configured.OverallCode);
            Assert.Equal(3u, configured.Statuses[0].CurrentLimit.RequestsPerUnit);
            Assert.Equal(Unit.Minute, configured.Statuses[0].CurrentLimit.Unit);
            Assert.Equal(expected, configured.Statuses[0].LimitRemaining);
        }

        Assert.Equal(Code.Ok, (await server.CallAsync(overridden)).OverallCode);
        var fourth = await server.CallAsync("test", D(("remote_address", "5.5.5.5")));
        Assert.Equal(Code.OverLimit, fourth.OverallCode);
        Assert.Equal(Code.OverLimit, fourth.Statuses[0].Code);
        Assert.Equal(0u, fourth.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task Limit_overrides_of_different_units_on_the_same_entries_keep_separate_counts()
    {
        await using var server = await Start();
        var perSecond = EnvoyServer.Request("test", D(("unconfigured", "y")));
        perSecond.Descriptors[0].Limit = new() { RequestsPerUnit = 1, Unit = global::Envoy.Type.V3.RateLimitUnit.Second };
        var perMinute = EnvoyServer.Request("test", D(("unconfigured", "y")));
        perMinute.Descriptors[0].Limit = new() { RequestsPerUnit = 1, Unit = global::Envoy.Type.V3.RateLimitUnit.Minute };

        Assert.Equal(Code.Ok, (await server.CallAsync(perMinute)).OverallCode);
        server.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(Code.Ok, (await server.CallAsync(perSecond)).OverallCode);
        server.Time.Advance(TimeSpan.FromSeconds(1));
        var again = await server.CallAsync(perMinute);
        Assert.Equal(Code.OverLimit, again.OverallCode);
        Assert.Equal(Unit.Minute, again.Statuses[0].CurrentLimit.Unit);
    }

    [Fact]
    public async Task An_unlimited_rule_replaces_the_rules_it_names()
    {
        CountingStore? store = null;
        await using var server = await Start(store: time => store = new CountingStore(CreateStore(time)));
        for (var i = 0; i < 12; i++)
        {
            var response = await server.CallAsync("test", D(("tier", "vip")), D(("tier", "base")));
            Assert.Equal(Code.Ok, response.OverallCode);
            Assert.Equal(uint.MaxValue, response.Statuses[0].LimitRemaining);
            Assert.Null(response.Statuses[1].CurrentLimit);
        }

        Assert.Equal(0, store!.Calls);
        var alone = await server.CallAsync("test", D(("tier", "base")));
        Assert.Equal(9u, alone.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task A_descriptor_repeated_in_one_request_is_counted_once_per_copy_in_request_order()
    {
        await using var server = await Start();
        var ip = D(("remote_address", "1.1.1.1"));
        var two = await server.CallAsync("test", ip, ip);
        Assert.Equal(Code.Ok, two.OverallCode);
        Assert.Equal([2u, 1u], two.Statuses.Select(s => s.LimitRemaining));
        var single = await server.CallAsync("test", ip);
        Assert.Equal(0u, single.Statuses[0].LimitRemaining);

        var other = D(("remote_address", "2.2.2.2"));
        var four = await server.CallAsync("test", other, other, other, other);
        Assert.Equal(Code.OverLimit, four.OverallCode);
        Assert.Equal([Code.Ok, Code.Ok, Code.Ok, Code.OverLimit], four.Statuses.Select(s => s.Code));
        Assert.Equal([2u, 1u, 0u, 0u], four.Statuses.Select(s => s.LimitRemaining));
        Assert.All(four.Statuses, s => Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(50)), s.DurationUntilReset));

        // All four were counted, as the reference's INCRBY counts them: the counter is past its limit.
        var after = await server.CallAsync("test", other);
        Assert.Equal(Code.OverLimit, after.OverallCode);
    }

    [Fact]
    public async Task Repeated_descriptors_over_the_limit_charge_only_the_copies_that_fit_when_counting_within_the_limit()
    {
        await using var server = await Start(o => o.HitCounting = EnvoyHitCounting.WithinLimit);
        var request = EnvoyServer.Request("test", D(("remote_address", "3.3.3.3")), D(("remote_address", "3.3.3.3")));
        request.HitsAddend = 2;
        var response = await server.CallAsync(request);
        Assert.Equal([Code.Ok, Code.OverLimit], response.Statuses.Select(s => s.Code));
        Assert.Equal([1u, 0u], response.Statuses.Select(s => s.LimitRemaining));

        var last = await server.CallAsync("test", D(("remote_address", "3.3.3.3")));
        Assert.Equal(Code.Ok, last.OverallCode);
        Assert.Equal(0u, last.Statuses[0].LimitRemaining);
    }

    [Fact]
    public async Task Hits_addend_counts_per_request_and_per_descriptor_and_zero_checks_without_counting()
    {
        await using var server = await Start();
        var request = EnvoyServer.Request("test", D(("remote_address", "1.1.1.1")));
        request.HitsAddend = 2;
        var two = await server.CallAsync(request);
        Assert.Equal(1u, two.Statuses[0].LimitRemaining);

        request.Descriptors[0].HitsAddend = 0;
        for (var i = 0; i < 3; i++)
        {
            var check = await server.CallAsync(request);
            Assert.Equal(Code.Ok, check.OverallCode);
            Assert.Equal(1u, check.Statuses[0].LimitRemaining);
        }

        request.Descriptors[0].HitsAddend = 1;
        var last = await server.CallAsync(request);
        Assert.Equal(0u, last.Statuses[0].LimitRemaining);

        // A check at the limit is still OK, as INCRBY 0 is in the reference; a counted hit is over.
        request.Descriptors[0].HitsAddend = 0;
        Assert.Equal(Code.Ok, (await server.CallAsync(request)).OverallCode);
        request.Descriptors[0].HitsAddend = null;
        request.HitsAddend = 0;
        Assert.Equal(Code.OverLimit, (await server.CallAsync(request)).OverallCode);
    }

    [Fact]
    public async Task A_hits_addend_beyond_the_remaining_is_over_the_limit_and_consumes_nothing_when_counting_within_the_limit()
    {
        await using var server = await Start(o => o.HitCounting = EnvoyHitCounting.WithinLimit);
        var request = EnvoyServer.Request("test", D(("remote_address", "2.2.2.2")));
        request.HitsAddend = 5;
        var over = await server.CallAsync(request);
        Assert.Equal(Code.OverLimit, over.OverallCode);
        request.HitsAddend = 3;
        Assert.Equal(Code.Ok, (await server.CallAsync(request)).OverallCode);
    }

    [Fact]
    public async Task A_shadow_rule_is_counted_and_measured_but_answers_ok()
    {
        await using var server = await Start();
        using var metrics = new MetricsRecorder(server.Services.GetRequiredService<IMeterFactory>());
        await server.CallAsync("test", D(("shadow", "x")));
        var second = await server.CallAsync("test", D(("shadow", "x")));
        Assert.Equal(Code.Ok, second.OverallCode);
        Assert.Equal(Code.Ok, second.Statuses[0].Code);
        Assert.Equal(0u, second.Statuses[0].LimitRemaining);
        Assert.Equal(1u, second.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.Equal(2, metrics.Sum("rate_limit.total_hits", "test.shadow"));
        Assert.Equal(1, metrics.Sum("rate_limit.shadow_mode", "test.shadow"));
        Assert.Equal(1, metrics.Sum("rate_limit.over_limit", "test.shadow"));
    }

    [Fact]
    public async Task Global_shadow_mode_answers_ok_overall_and_reports_each_descriptor()
    {
        await using var server = await Start(o => o.GlobalShadowMode = true);
        using var metrics = new MetricsRecorder(server.Services.GetRequiredService<IMeterFactory>());
        await server.CallAsync("test", D(("remote_address", "10.0.0.1")));
        var second = await server.CallAsync("test", D(("remote_address", "10.0.0.1")));
        Assert.Equal(Code.Ok, second.OverallCode);
        Assert.Equal(Code.OverLimit, second.Statuses[0].Code);
        Assert.Equal(1, metrics.Sum("global_shadow_mode", string.Empty));
    }

    [Fact]
    public async Task Response_headers_describe_the_descriptor_closest_to_its_limit_when_enabled()
    {
        await using (var off = await Start())
        {
            Assert.Empty((await off.CallAsync("test", D(("remote_address", "1.2.3.4")))).ResponseHeadersToAdd);
        }

        await using var server = await Start(o => o.ResponseHeadersEnabled = true);
        var response = await server.CallAsync("test", D(("tier", "premium")), D(("remote_address", "1.2.3.4")), D(("client_id", "unlimited")));
        var headers = response.ResponseHeadersToAdd.ToDictionary(h => h.Key, h => h.Value);
        // The reference's default names.
        Assert.Equal("3", headers["RateLimit-Limit"]);
        Assert.Equal("2", headers["RateLimit-Remaining"]);
        Assert.Equal("50", headers["RateLimit-Reset"]);
        Assert.Equal(3, headers.Count);

        await server.CallAsync("test", D(("remote_address", "10.0.0.1")));
        var over = await server.CallAsync("test", D(("remote_address", "1.2.3.4")), D(("remote_address", "10.0.0.1")));
        headers = over.ResponseHeadersToAdd.ToDictionary(h => h.Key, h => h.Value);
        Assert.Equal("1", headers["RateLimit-Limit"]);
        Assert.Equal("0", headers["RateLimit-Remaining"]);
    }

    [Fact]
    public async Task Share_threshold_counts_every_value_matching_the_wildcard_in_one_bucket()
    {
        await using var server = await Start();
        Assert.Equal(1u, (await server.CallAsync("test", D(("files", "share-a")))).Statuses[0].LimitRemaining);
        Assert.Equal(0u, (await server.CallAsync("test", D(("files", "share-b")))).Statuses[0].LimitRemaining);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("files", "share-c")))).OverallCode);
    }

    [Fact]
    public async Task Zero_requests_per_unit_rejects_every_counted_hit()
    {
        await using var server = await Start();
        var over = await server.CallAsync("test", D(("blocked", "x")));
        Assert.Equal(Code.OverLimit, over.OverallCode);
        Assert.Equal(0u, over.Statuses[0].CurrentLimit.RequestsPerUnit);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(50)), over.Statuses[0].DurationUntilReset);
        var request = EnvoyServer.Request("test", D(("blocked", "x")));
        request.Descriptors[0].HitsAddend = 0;
        Assert.Equal(Code.Ok, (await server.CallAsync(request)).OverallCode);
    }

    [Fact]
    public async Task Global_quota_mode_counts_unmatched_and_replaced_descriptors_but_not_unlimited_ones()
    {
        await using var server = await Start(o => o.GlobalQuotaMode = true);
        var ip = D(("remote_address", "5.5.5.5"));
        await server.CallAsync("test", ip, ip, ip);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", ip)).OverallCode);
        Assert.Equal(Code.Ok, (await server.CallAsync("test", ip, D(("unconfigured", "x")))).OverallCode);
        Assert.Equal(Code.Ok, (await server.CallAsync("test", ip, D(("tier", "base")), D(("tier", "premium")))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", ip, D(("client_id", "unlimited")))).OverallCode);
    }

    [Fact]
    public async Task Quota_mode_is_over_the_limit_only_when_every_quota_descriptor_is()
    {
        await using var server = await Start();
        await server.CallAsync("test", D(("quota", "a")));
        var mixed = await server.CallAsync("test", D(("quota", "a")), D(("quota", "b")));
        Assert.Equal(Code.Ok, mixed.OverallCode);
        Assert.Equal(Code.OverLimit, mixed.Statuses[0].Code);
        Assert.Equal(Code.Ok, mixed.Statuses[1].Code);
        var all = await server.CallAsync("test", D(("quota", "a")), D(("quota", "b")));
        Assert.Equal(Code.OverLimit, all.OverallCode);
    }

    [Theory]
    [InlineData("hour", Unit.Hour, 3600)]
    [InlineData("day", Unit.Day, 86400)]
    [InlineData("week", Unit.Week, 7 * 86400)]
    [InlineData("month", Unit.Month, 30 * 86400)]
    [InlineData("year", Unit.Year, 365 * 86400)]
    public async Task Every_unit_resets_at_its_epoch_aligned_window(string key, Unit unit, long seconds)
    {
        await using var server = await Start();
        var response = await server.CallAsync("test", D((key, "x")));
        Assert.Equal(unit, response.Statuses[0].CurrentLimit.Unit);
        Assert.Equal(4u, response.Statuses[0].LimitRemaining);
        var now = server.Time.GetUtcNow().ToUnixTimeSeconds();
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(seconds - (now % seconds))), response.Statuses[0].DurationUntilReset);
    }

    [Fact]
    public async Task Duration_until_reset_is_rounded_up_to_whole_seconds()
    {
        await using var server = await Start();
        server.Time.Advance(TimeSpan.FromMilliseconds(700));
        var response = await server.CallAsync("test", D(("remote_address", "4.4.4.4")), D(("gcra", "y")));
        Assert.Equal(new Duration { Seconds = 50 }, response.Statuses[0].DurationUntilReset);
        Assert.Equal(new Duration { Seconds = 1 }, response.Statuses[1].DurationUntilReset);
    }

    [Fact]
    public async Task The_gcra_algorithm_with_a_burst_refills_smoothly()
    {
        await using var server = await Start();
        var first = await server.CallAsync("test", D(("gcra", "x")));
        Assert.Equal(1u, first.Statuses[0].LimitRemaining);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(1)), first.Statuses[0].DurationUntilReset);
        Assert.Equal(0u, (await server.CallAsync("test", D(("gcra", "x")))).Statuses[0].LimitRemaining);
        var over = await server.CallAsync("test", D(("gcra", "x")));
        Assert.Equal(Code.OverLimit, over.OverallCode);
        Assert.Equal(Duration.FromTimeSpan(TimeSpan.FromSeconds(1)), over.Statuses[0].DurationUntilReset);

        // The hit over the limit was counted too (HitCounting.All), owing one interval: two intervals later, exactly one
        // more fits. A fixed window of 10/s would have admitted 10 at once.
        server.Time.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal(Code.Ok, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
    }

    [Fact]
    public async Task The_gcra_algorithm_counting_within_the_limit_refills_one_interval_after_a_rejection()
    {
        await using var server = await Start(o => o.HitCounting = EnvoyHitCounting.WithinLimit);
        await server.CallAsync("test", D(("gcra", "x")));
        await server.CallAsync("test", D(("gcra", "x")));
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
        server.Time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Equal(Code.Ok, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("gcra", "x")))).OverallCode);
    }

    [Fact]
    public async Task The_sliding_window_algorithm_weighs_the_previous_window()
    {
        await using var server = await Start();
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(Code.Ok, (await server.CallAsync("test", D(("sliding", "x")))).OverallCode);
        }

        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("sliding", "x")))).OverallCode);

        // 15 s into the next minute, 45/60 of the previous 4 still weigh: floor(3) used, 1 left. A fixed window would allow 4.
        server.Time.Advance(TimeSpan.FromSeconds(65));
        var next = await server.CallAsync("test", D(("sliding", "x")));
        Assert.Equal(Code.Ok, next.OverallCode);
        Assert.Equal(0u, next.Statuses[0].LimitRemaining);
        Assert.Equal(Code.OverLimit, (await server.CallAsync("test", D(("sliding", "x")))).OverallCode);
    }

    [Fact]
    public async Task Metrics_count_total_within_near_and_over_limit_hits_per_rule()
    {
        await using var server = await Start();
        using var metrics = new MetricsRecorder(server.Services.GetRequiredService<IMeterFactory>());
        for (var i = 0; i < 5; i++)
        {
            await server.CallAsync("test", D(("remote_address", "3.3.3.3")));
        }

        // Limit 3, near-limit threshold floor(3 × 0.8) = 2: the 3rd hit is near, the 4th and 5th over.
        Assert.Equal(5, metrics.Sum("rate_limit.total_hits", "test.remote_address"));
        Assert.Equal(3, metrics.Sum("rate_limit.within_limit", "test.remote_address"));
        Assert.Equal(1, metrics.Sum("rate_limit.near_limit", "test.remote_address"));
        Assert.Equal(2, metrics.Sum("rate_limit.over_limit", "test.remote_address"));

        // detailed_metric names the descriptor's values.
        await server.CallAsync("test", D(("detailed", "v1")));
        Assert.Equal(1, metrics.Sum("rate_limit.total_hits", "test.detailed_v1"));
    }

    [Fact]
    public async Task Concurrent_calls_admit_exactly_the_limit()
    {
        await using var server = await Start();
        var calls = Enumerable.Range(0, 40).Select(_ => server.CallAsync("test", D(("remote_address", "7.7.7.7")))).ToArray();
        var responses = await Task.WhenAll(calls);
        Assert.Equal(3, responses.Count(r => r.OverallCode == Code.Ok));
        Assert.Equal([0u, 1u, 2u], responses.Where(r => r.OverallCode == Code.Ok).Select(r => r.Statuses[0].LimitRemaining).Order());
    }

    [Fact]
    public async Task The_grpc_health_service_reports_serving()
    {
        await using var server = await Start();
        var health = new Grpc.Health.V1.Health.HealthClient(server.Channel);
        var reply = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }
}

/// <summary>The semantics on the in-memory store.</summary>
public sealed class MemoryStoreSemanticsTests : ShouldRateLimitSemantics
{
    protected override IRateLimitStore CreateStore(FakeTimeProvider time) => new MemoryStore(null, time);
}
