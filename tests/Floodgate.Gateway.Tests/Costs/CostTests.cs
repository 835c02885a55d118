using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Floodgate.Gateway.Hosting;

namespace Floodgate.Gateway.Tests.Costs;

/// <summary>
/// Token budgets through the real gateway (Kestrel, YARP) in front of a real upstream that streams like an LLM API:
/// reservations cut a fan-out at admission, usage is read from the stream as it goes by, and every request is settled
/// however it ends.
/// </summary>
public sealed partial class CostTests
{
    private const long Budget = 10_000;

    private static string Policy(LlmUpstream upstream, string rule, string cost, string? store = null) => $"""
        upstream: {upstream.Address.ToString().TrimEnd('/')}
        {store ?? string.Empty}
        edge:
          - name: {rule}
            key: ["header:x-session"]
            limit: {Budget}/d
            cost:
        {cost}
        """;

    private const string Reserved = """
              reserve: { field: max_tokens, add: 100, default: 4000 }
              charge: total_tokens
        """;

    [Fact]
    public async Task Fifty_concurrent_calls_of_one_session_are_cut_at_admission_and_charged_what_they_used()
    {
        await using var upstream = await LlmUpstream.StartAsync();
        using var meter = new CostMeter();
        await using var gateway = await TestGateway.StartAsync(Policy(upstream, "fanout-memory", Reserved));
        await FanOutAsync([gateway.Client], upstream, meter, "fanout-memory");
    }

    [Fact]
    public async Task Two_replicas_sharing_redis_cut_the_fan_out_at_admission_together()
    {
        using var redis = RedisServer.Start();
        await using var upstream = await LlmUpstream.StartAsync();
        using var meter = new CostMeter();
        var store = $"store: {{ kind: redis, configuration: \"{redis.Configuration}\", on_failure: closed, timeout: 2s }}";
        await using var first = await TestGateway.StartAsync(Policy(upstream, "fanout-redis", Reserved, store));
        await using var second = await GatewayHost.StartAsync(new GatewayHostOptions
        {
            PolicyPath = first.PolicyPath,
            Listen = new Uri("http://127.0.0.1:0"),
            Admin = null,
            WatchPolicy = false,
            StoreStartupTimeout = TimeSpan.FromSeconds(5),
        });
        using var secondClient = new HttpClient { BaseAddress = second.ProxyAddress, Timeout = TimeSpan.FromSeconds(30) };
        await FanOutAsync([first.Client, secondClient], upstream, meter, "fanout-redis");
    }

    /// <summary>
    /// 50 calls at once, each reserving 600 (max_tokens 500 plus 100) and using 500: the budget of 10,000 covers 16
    /// reservations, so 16 reach the upstream and 34 are refused at once, with a Retry-After. Each is settled to what it
    /// used: 8,000 charged, not more than the budget (the documented bound: the budget plus what calls use past their
    /// reservation, here nothing), and the 1,600 reserved but unused come back.
    /// </summary>
    private static async Task FanOutAsync(HttpClient[] clients, LlmUpstream upstream, CostMeter meter, string rule)
    {
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
        {
            using var response = await clients[i % clients.Length].SendAsync(Chat("agent-run-1", maxTokens: 500, used: 400, holdMs: 400));
            var text = await response.Content.ReadAsStringAsync();
            return (response.StatusCode, Retry: response.Headers.RetryAfter?.Delta, Text: text);
        }));

        Assert.Equal(16, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(34, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests), r => Assert.True(r.Retry > TimeSpan.Zero));
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.OK), r => Assert.EndsWith("data: [DONE]\n\n", r.Text, StringComparison.Ordinal));
        Assert.Equal(16, upstream.Calls);

        Assert.True(await CostMeter.UntilAsync(() => meter.Sum("charged", rule) == 16 * 500), $"charged {meter.Sum("charged", rule)}");
        Assert.Equal(16 * 600, meter.Sum("reserved", rule));
        Assert.Equal(16 * 100, meter.Sum("refunded", rule));
        Assert.Equal(0, meter.Sum("overrun", rule));
        Assert.True(upstream.Reported <= Budget);

        // 2,000 left: the next call reserves 600 of them, and the policy names the unit.
        using var next = await clients[0].SendAsync(Chat("agent-run-1", maxTokens: 500, used: 0));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(2_000 - 600, Remaining(next));
        Assert.Contains("qu=\"tokens\"", next.Headers.GetValues("RateLimit-Policy").Single(), StringComparison.Ordinal);

        // Another session has its own budget: one agent run cannot spend another's.
        using var other = await clients[^1].SendAsync(Chat("agent-run-2", maxTokens: 500, used: 0));
        Assert.Equal(Budget - 600, Remaining(other));
    }

    [Theory]
    [InlineData("last", 250 + LlmUpstream.PromptTokens)]
    [InlineData("split", 250 + LlmUpstream.PromptTokens)]
    [InlineData("json", 250 + LlmUpstream.PromptTokens)]
    [InlineData("absent", 300)] // the fallback
    [InlineData("malformed", 300)]
    [InlineData("huge", 300)]
    public async Task Usage_is_read_from_the_stream_as_it_goes_by_and_a_response_without_it_pays_the_fallback(string scenario, long charged)
    {
        await using var upstream = await LlmUpstream.StartAsync();
        using var meter = new CostMeter();
        var rule = "usage-" + scenario;
        await using var gateway = await TestGateway.StartAsync(Policy(upstream, rule, """
                  reserve: 1000
                  fallback: 300
            """));

        using var response = await gateway.Client.SendAsync(Chat("s", maxTokens: 10, used: 250, scenario: scenario));
        var received = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // The client gets the upstream's bytes, unchanged.
        Assert.Equal(Encoding.UTF8.GetString(upstream.LastBody), Encoding.UTF8.GetString(received));

        Assert.True(await CostMeter.UntilAsync(() => meter.Sum("charged", rule) > 0), "never settled");
        Assert.Equal(charged, meter.Sum("charged", rule));
        Assert.Equal(1000 - charged, meter.Sum("refunded", rule));
        using var next = await gateway.Client.SendAsync(Chat("s", maxTokens: 10, used: 0));
        Assert.Equal(Budget - charged - 1000, Remaining(next));
    }

    [Fact]
    public async Task A_client_that_goes_away_mid_stream_is_refunded_and_the_upstream_call_is_ended()
    {
        await using var upstream = await LlmUpstream.StartAsync();
        using var meter = new CostMeter();
        await using var gateway = await TestGateway.StartAsync(Policy(upstream, "stall", """
                  reserve: 1000
                  fallback: 300
                  on_failure: refund
            """));

        using (var cancel = new CancellationTokenSource())
        {
            using var response = await gateway.Client.SendAsync(Chat("s", maxTokens: 10, used: 250, scenario: "stall"), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            var stream = await response.Content.ReadAsStreamAsync(cancel.Token);
            var first = new byte[64];
            Assert.True(await stream.ReadAsync(first, cancel.Token) > 0);
            await cancel.CancelAsync();
        }

        Assert.True(await CostMeter.UntilAsync(() => upstream.Abandoned == 1), "the upstream call was not ended");
        Assert.True(await CostMeter.UntilAsync(() => meter.Sum("refunded", "stall") == 1000), $"refunded {meter.Sum("refunded", "stall")}");
        Assert.Equal(0, meter.Sum("charged", "stall"));
        using var next = await gateway.Client.SendAsync(Chat("s", maxTokens: 10, used: 0));
        Assert.Equal(Budget - 1000, Remaining(next));
    }

    [Fact]
    public async Task An_overrun_takes_the_session_below_zero_and_then_nothing_is_admitted()
    {
        await using var upstream = await LlmUpstream.StartAsync();
        await using var gateway = await TestGateway.StartAsync(Policy(upstream, "overrun", """
                  reserve: { field: max_tokens, default: 100 }
            """));

        // Reserves 100, reports 12,100 used: 2,100 past the budget.
        using (var response = await gateway.Client.SendAsync(Chat("s", maxTokens: 100, used: 12_000)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
        }

        // Settled once the response has ended: from then on even a call that reserves 1 is refused, for hours.
        HttpStatusCode status = default;
        TimeSpan? retry = null;
        Assert.True(await CostMeter.UntilAsync(() =>
        {
            using var probe = gateway.Client.Send(Chat("s", maxTokens: 1, used: 0, scenario: "absent"));
            (status, retry) = (probe.StatusCode, probe.Headers.RetryAfter?.Delta);
            return status == HttpStatusCode.TooManyRequests;
        }), $"still {status}");
        Assert.True(retry > TimeSpan.FromHours(4), $"retry after {retry}");
    }

    private static HttpRequestMessage Chat(string session, int maxTokens, long used, string scenario = "last", int holdMs = 0)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent($$"""{"model":"small","max_tokens":{{maxTokens}},"stream":true,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-session", session);
        request.Headers.Add("x-used", used.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add("x-scenario", scenario);
        request.Headers.Add("x-hold-ms", holdMs.ToString(CultureInfo.InvariantCulture));
        return request;
    }

    private static long Remaining(HttpResponseMessage response) =>
        long.Parse(RemainingPattern().Match(response.Headers.GetValues("RateLimit").Single()).Groups[1].Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(";r=(\\d+)")]
    private static partial Regex RemainingPattern();
}
