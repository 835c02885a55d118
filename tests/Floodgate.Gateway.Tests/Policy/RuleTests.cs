using System.Net;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

public sealed class RuleTests
{
    [Fact]
    public async Task A_rule_for_one_method_leaves_the_others_alone()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            user:
              - name: create-order
                match: { method: POST, route: /orders }
                key: [subject, route]
                limit: 1/min
            """);
        var alice = gate.Identity.CreateToken(subject: "alice", now: gate.Time.GetUtcNow());

        Assert.Equal(HttpStatusCode.OK, (await gate.SendAsync(HttpMethod.Post, "/orders", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await gate.SendAsync(HttpMethod.Post, "/orders", alice)).StatusCode);
        Statuses.Expect([200, 200, 200], await gate.StatusesAsync(3, "/orders", alice));
    }

    [Fact]
    public async Task Plans_set_each_subject_s_limit_and_the_default_plan_applies_without_a_claim()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            default_plan: free
            plans:
              free: { per_user: 2/min }
              pro:  { per_user: 4/min }
            user:
              - name: per-user
                limit: plan.per_user
            """);
        var now = gate.Time.GetUtcNow();
        var free = gate.Identity.CreateToken(subject: "alice", now: now, claims: new Dictionary<string, object> { ["plan"] = "free" });
        var pro = gate.Identity.CreateToken(subject: "bob", now: now, claims: new Dictionary<string, object> { ["plan"] = "pro" });
        var none = gate.Identity.CreateToken(subject: "carol", now: now);

        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", free));
        Statuses.Expect([200, 200, 200, 200, 429], await gate.StatusesAsync(5, "/a", pro));
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", none));
        using var response = await gate.GetAsync("/b", gate.Identity.CreateToken(subject: "dave", now: now, claims: new Dictionary<string, object> { ["plan"] = "pro" }));
        Assert.Equal("\"per-user\";q=4;w=60", response.Header("RateLimit-Policy"));
    }

    [Fact]
    public async Task A_shadow_rule_counts_but_never_rejects()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: trial
                limit: 1/min
                mode: shadow
              - name: enforced
                limit: 10/min
            """);

        Statuses.Expect([200, 200, 200], await gate.StatusesAsync(3, "/a"));
        using var response = await gate.GetAsync("/a");

        // The headers show the enforced rule: a shadow rule never shows a client a limit it does not enforce.
        Assert.Equal("\"enforced\";q=10;w=60", response.Header("RateLimit-Policy"));
        var metrics = await gate.Admin.GetStringAsync("/metrics");
        Assert.Contains("outcome=\"shadow_rejected\",rule=\"trial\"", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Global_shadow_mode_lets_everything_through()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            shadow: true
            edge:
              - name: tight
                limit: 1/min
            global:
              - name: everything
                limit: 1/min
            """);

        Statuses.Expect([200, 200, 200], await gate.StatusesAsync(3, "/a"));
        Assert.Equal(3, gate.Upstream.Hits);
    }

    [Fact]
    public async Task Service_concurrency_answers_503_while_the_endpoint_is_full()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            service:
              - name: slow-capacity
                match: { route: "/slow/{id}" }
                concurrency: 1
            """);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.Upstream.SlowGate = release.Task;

        var first = gate.GetAsync("/slow/1");
        for (var i = 0; i < 200 && gate.Upstream.Hits == 0; i++)
        {
            await Task.Delay(25);
        }

        Assert.Equal(1, gate.Upstream.Hits);
        using (var second = await gate.GetAsync("/slow/2"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
            Assert.NotNull(second.Header("Retry-After"));
            using var problem = JsonDocument.Parse(await second.Content.ReadAsStringAsync());
            Assert.Equal("slow-capacity", problem.RootElement.GetProperty("rule").GetString());
            Assert.Equal("service", problem.RootElement.GetProperty("tier").GetString());
        }

        // Other endpoints are not held.
        Assert.Equal(HttpStatusCode.OK, (await gate.GetAsync("/fast")).StatusCode);

        release.SetResult();
        using (var done = await first)
        {
            Assert.Equal(HttpStatusCode.OK, done.StatusCode);
        }

        // The lease was released when the first request ended.
        using var third = await gate.GetAsync("/slow/3");
        Assert.Equal(HttpStatusCode.OK, third.StatusCode);
    }

    [Fact]
    public async Task A_global_limit_holds_every_caller_and_answers_503()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            global:
              - name: everything
                limit: 3/min
            """);
        var now = gate.Time.GetUtcNow();
        Statuses.Expect([200, 200], await gate.StatusesAsync(2, "/a", gate.Identity.CreateToken(subject: "alice", now: now)));
        Statuses.Expect([200, 503], await gate.StatusesAsync(2, "/a", gate.Identity.CreateToken(subject: "bob", now: now)));
    }

    [Fact]
    public async Task A_rule_s_on_failure_overrides_the_store_s_while_redis_is_unreachable()
    {
        // Nothing listens on the port: every decision is answered by a failure mode.
        var port = RedisServer.FreePort(cluster: false);
        var policy = $$"""
            upstream: {upstream}
            store: { kind: redis, configuration: "127.0.0.1:{{port}},connectTimeout=200", on_failure: open, timeout: 50ms }
            user:
              - name: per-caller
                limit: 100/min
            global:
              - name: ceiling
                limit: 1000/min
                on_failure: {{"{mode}"}}
            """;
        await using var gate = await TestGateway.StartAsync(policy.Replace("{mode}", "closed", StringComparison.Ordinal));

        // The store is open, but the global ceiling protects the backend: 503, naming the rule, and the upstream untouched.
        using (var closed = await gate.GetAsync("/a"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, closed.StatusCode);
            Assert.NotNull(closed.Headers.RetryAfter);
            using var problem = JsonDocument.Parse(await closed.Content.ReadAsStringAsync());
            Assert.Equal("ceiling", problem.RootElement.GetProperty("rule").GetString());
        }

        Assert.Equal(0, gate.Upstream.Hits);

        // Reloaded with the ceiling following the store (open), the same request passes.
        await gate.WritePolicyAsync(policy.Replace("on_failure: {mode}", "mode: enforce", StringComparison.Ordinal));
        Assert.Empty(gate.Host.Reload());
        using var open = await gate.GetAsync("/a");
        Assert.Equal(HttpStatusCode.OK, open.StatusCode);
        Assert.Equal(1, gate.Upstream.Hits);
    }

    [Fact]
    public async Task Headers_carry_exact_values_on_the_fake_clock()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            headers: { ietf: true, legacy: true }
            edge:
              - name: ip
                limit: 3/min
            """);

        // gcra 3/min: each request costs a 20 s interval; the bucket is full again 20 s per spent request later.
        for (var i = 1; i <= 3; i++)
        {
            using var ok = await gate.GetAsync("/a");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("\"ip\";q=3;w=60", ok.Header("RateLimit-Policy"));
            Assert.Equal($"\"ip\";r={3 - i};t={20 * i}", ok.Header("RateLimit"));
            Assert.Equal("3", ok.Header("X-RateLimit-Limit"));
            Assert.Equal($"{3 - i}", ok.Header("X-RateLimit-Remaining"));
            Assert.Equal($"{20 * i}", ok.Header("X-RateLimit-Reset"));
        }

        using (var over = await gate.GetAsync("/a"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
            Assert.Equal("20", over.Header("Retry-After"));
            Assert.Equal("\"ip\";r=0;t=60", over.Header("RateLimit"));
            Assert.Equal("application/problem+json", over.Content.Headers.ContentType?.MediaType);
            using var problem = JsonDocument.Parse(await over.Content.ReadAsStringAsync());
            Assert.Equal(429, problem.RootElement.GetProperty("status").GetInt32());
            Assert.Equal("ip", problem.RootElement.GetProperty("rule").GetString());
            Assert.Equal("edge", problem.RootElement.GetProperty("tier").GetString());
            Assert.Equal(20, problem.RootElement.GetProperty("retryAfter").GetInt32());
        }

        // Retry-After is whole seconds rounded up: 14.5 s left is 15.
        gate.Time.Advance(TimeSpan.FromSeconds(5.5));
        using var later = await gate.GetAsync("/a");
        Assert.Equal("15", later.Header("Retry-After"));
    }

    [Fact]
    public async Task The_epoch_reset_is_a_unix_time_on_the_fake_clock()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            headers: { legacy: true, legacy_reset: epoch }
            edge:
              - name: ip
                limit: 3/min
            """);

        // Whole seconds on the clock, so that the expected instants are whole: 20 s per spent request, as above.
        gate.Time.Advance(TimeSpan.FromTicks(TimeSpan.TicksPerSecond - (gate.Time.GetUtcNow().UtcTicks % TimeSpan.TicksPerSecond)));
        var start = gate.Time.GetUtcNow().ToUnixTimeSeconds();
        for (var i = 1; i <= 3; i++)
        {
            using var ok = await gate.GetAsync("/a");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal($"{start + (20 * i)}", ok.Header("X-RateLimit-Reset"));
            Assert.Equal($"\"ip\";r={3 - i};t={20 * i}", ok.Header("RateLimit"));
        }

        gate.Time.Advance(TimeSpan.FromSeconds(5.5));
        using var over = await gate.GetAsync("/a");
        Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
        Assert.Equal("15", over.Header("Retry-After"));
        Assert.Equal($"{start + 60}", over.Header("X-RateLimit-Reset"));
    }

    [Fact]
    public async Task A_cost_that_can_never_fit_omits_retry_after_and_says_so()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            edge:
              - name: bulk
                match: { path: /bulk }
                limit: 5/min
                cost: 10
            """);

        using var response = await gate.GetAsync("/bulk");
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Null(response.Header("Retry-After"));
        Assert.Contains("can ever admit", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
