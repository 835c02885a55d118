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

/// <summary>The semantics of counting: limit overrides, repeated descriptors, hits, shadow and quota modes, response headers.</summary>
public abstract partial class ShouldRateLimitSemantics
{
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
}
