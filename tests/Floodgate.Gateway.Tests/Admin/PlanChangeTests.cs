using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

/// <summary>Plan changes and overrides on two gateway replicas sharing one redis-server.</summary>
public sealed class PlanChangeTests
{
    private static string Policy(RedisServer redis, AdminTokens token) => $$"""
        upstream: {upstream}
        store: { kind: redis, configuration: "{{redis.Configuration}}", on_failure: closed, timeout: 2s }
        {identity}
        default_plan: free
        plans:
          free: { per_user: 5/h }
          pro: { per_user: 12/h }
        user:
          - name: per-user
            limit: plan.per_user
            algorithm: quota
            calendar: false
        {{token.Section}}
        """;

    [Fact]
    public async Task A_plan_change_on_one_replica_applies_on_both_within_a_second_keeping_the_counters()
    {
        using var redis = RedisServer.Start();
        using var token = new AdminTokens();
        await using var a = await TestGateway.StartAsync(Policy(redis, token));
        await using var b = await TestGateway.StartAsync(Policy(redis, token));
        var tokenA = a.Identity.CreateToken(subject: "alice");
        var tokenB = b.Identity.CreateToken(subject: "alice");

        // Free: 5 an hour between both replicas.
        Assert.Equal(new[] { 200, 200, 200 }, await a.StatusesAsync(3, "/x", tokenA));
        Assert.Equal(new[] { 200, 200, 429 }, await b.StatusesAsync(3, "/x", tokenB));

        using var admin = token.Client(a.Host.AdminAddress!);
        using var change = await admin.PutAsJsonAsync("/admin/v1/subjects/alice/plan", new { plan = "pro" });
        Assert.Equal(HttpStatusCode.OK, change.StatusCode);
        var changed = Stopwatch.StartNew();

        // The other replica sees it within a second; a refused request consumes nothing, so polling costs no allowance.
        int status;
        do
        {
            using var response = await b.GetAsync("/x", tokenB);
            status = (int)response.StatusCode;
        }
        while (status != 200 && changed.Elapsed < TimeSpan.FromSeconds(1));
        Assert.Equal(200, status);
        Assert.True(changed.Elapsed < TimeSpan.FromSeconds(1), $"seen after {changed.Elapsed}");

        // Pro's 12, less the 5 kept and the 1 just admitted: exactly 6 more, on either replica.
        var statuses = new List<int>();
        for (var i = 0; i < 5; i++)
        {
            statuses.AddRange(await a.StatusesAsync(1, "/x", tokenA));
            statuses.AddRange(await b.StatusesAsync(1, "/x", tokenB));
        }

        Assert.Equal(6, statuses.Count(s => s == 200));
        Assert.Equal(4, statuses.Count(s => s == 429));

        // Usage, read on the other replica, says the same and consumes nothing.
        using var adminB = token.Client(b.Host.AdminAddress!);
        for (var read = 0; read < 2; read++)
        {
            var usage = JsonDocument.Parse(await adminB.GetStringAsync("/admin/v1/subjects/alice/usage")).RootElement;
            Assert.Equal("pro", usage.GetProperty("plan").GetString());
            Assert.True(usage.GetProperty("overridden").GetBoolean());
            var rule = Assert.Single(usage.GetProperty("rules").EnumerateArray());
            Assert.Equal("per-user", rule.GetProperty("rule").GetString());
            Assert.Equal("quota", rule.GetProperty("algorithm").GetString());
            Assert.Equal(12, rule.GetProperty("limit").GetInt64());
            Assert.Equal(12, rule.GetProperty("used").GetInt64());
            Assert.Equal(0, rule.GetProperty("remaining").GetInt64());
            Assert.True(rule.GetProperty("periodEnd").GetDateTimeOffset() > rule.GetProperty("periodStart").GetDateTimeOffset());
        }
    }

    [Fact]
    public async Task An_override_set_through_the_admin_api_is_stored_in_redis_survives_a_restart_and_lapses_on_time()
    {
        using var redis = RedisServer.Start();
        using var token = new AdminTokens();
        await using (var first = await TestGateway.StartAsync(Policy(redis, token)))
        {
            using var admin = token.Client(first.Host.AdminAddress!);
            using var set = await admin.PutAsJsonAsync("/admin/v1/overrides/bob", new { rates = new Dictionary<string, string> { ["per-user"] = "2/h" }, ttl = "10m" });
            Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        }

        // A new replica, started after the first stopped, reads it from Redis.
        await using var gateway = await TestGateway.StartAsync(Policy(redis, token));
        using var client = token.Client(gateway.Host.AdminAddress!);
        var stored = JsonDocument.Parse(await client.GetStringAsync("/admin/v1/overrides/bob")).RootElement;
        Assert.Equal("2/h", stored.GetProperty("rates").GetProperty("per-user").GetString());
        Assert.True(await Eventually.HoldsAsync(() => Task.FromResult(gateway.Host.Runtime.Overrides.TryFind("bob", out _)), TimeSpan.FromSeconds(5)));

        var bob = gateway.Identity.CreateToken(subject: "bob");
        Assert.Equal(new[] { 200, 200, 429 }, await gateway.StatusesAsync(3, "/x", bob));

        // The gateway's clock passes the expiry: free's 5 apply, the 2 used kept.
        gateway.Time.Advance(TimeSpan.FromMinutes(10));
        Assert.False(gateway.Host.Runtime.Overrides.TryFind("bob", out _));
        Assert.Equal(new[] { 200, 200, 200, 429 }, await gateway.StatusesAsync(4, "/x", bob));
        using var gone = await client.GetAsync("/admin/v1/overrides/bob");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Overrides_add_no_redis_call_per_request()
    {
        using var redis = RedisServer.Start();
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync(Policy(redis, token));
        using var admin = token.Client(gateway.Host.AdminAddress!);
        using var set = await admin.PutAsJsonAsync("/admin/v1/subjects/alice/plan", new { plan = "pro" });
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        var alice = gateway.Identity.CreateToken(subject: "alice");
        var bob = gateway.Identity.CreateToken(subject: "bob");

        // Commands counted by redis-server itself, around 10 requests of a subject with an override and 10 without.
        var before = Calls(redis);
        Assert.Equal(10, (await gateway.StatusesAsync(10, "/x", alice)).Count(s => s == 200));
        Assert.Equal(5, (await gateway.StatusesAsync(10, "/x", bob)).Count(s => s == 200));
        var after = Calls(redis);

        // One script call per admitted request (a rejected one is answered by the over-limit cache or one more call),
        // and no read of the overrides' hash at all: lookups are local.
        Assert.Equal(0, after.GetValueOrDefault("hget") - before.GetValueOrDefault("hget"));
        Assert.Equal(0, after.GetValueOrDefault("hgetall") - before.GetValueOrDefault("hgetall"));
        Assert.Equal(0, after.GetValueOrDefault("hscan") - before.GetValueOrDefault("hscan"));
        var scripts = after.GetValueOrDefault("evalsha") + after.GetValueOrDefault("eval") - before.GetValueOrDefault("evalsha") - before.GetValueOrDefault("eval");
        Assert.InRange(scripts, 16, 20);
    }

    /// <summary>Each command's call count, from <c>INFO commandstats</c>.</summary>
    private static Dictionary<string, long> Calls(RedisServer redis) =>
        redis.Cli("INFO", "commandstats").Split('\n')
            .Where(line => line.StartsWith("cmdstat_", StringComparison.Ordinal))
            .ToDictionary(
                line => line["cmdstat_".Length..line.IndexOf(':', StringComparison.Ordinal)],
                line => long.Parse(line.Split("calls=")[1].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task Bad_override_input_is_a_400_problem_naming_the_field_and_changes_are_logged_with_the_token_name()
    {
        using var token = new AdminTokens("release-bot");
        using var logs = new FakeLoggerProvider();
        await using var gateway = await TestGateway.StartAsync("""
            upstream: {upstream}
            default_plan: free
            plans:
              free: { per_user: 5/h }
              pro: { per_user: 12/h }
            user:
              - name: per-user
                limit: plan.per_user
            """ + "\n" + token.Section, logs: logs, logLevel: Microsoft.Extensions.Logging.LogLevel.Information);
        using var admin = token.Client(gateway.Host.AdminAddress!);

        var cases = new (string Path, object Body, string Field)[]
        {
            ("/admin/v1/overrides/alice", new { rates = new Dictionary<string, string> { ["no-such-rule"] = "1/s" } }, "rates.no-such-rule"),
            ("/admin/v1/overrides/alice", new { rates = new Dictionary<string, string> { ["per-user"] = "ten a minute" } }, "rates.per-user"),
            ("/admin/v1/overrides/alice", new { plan = "pro", ttl = "-5m" }, "ttl"),
            ("/admin/v1/overrides/alice", new { plan = "platinum" }, "plan"),
            ("/admin/v1/overrides/" + new string('s', 300), new { plan = "pro" }, "subject"),
            ("/admin/v1/subjects/alice/plan", new { plan = "" }, "plan"),
        };
        foreach (var (path, body, field) in cases)
        {
            using var response = await admin.PutAsJsonAsync(path, body);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{path}: {problem}");
        }

        using var ok = await admin.PutAsJsonAsync("/admin/v1/subjects/carol%2Fdev/plan", new { plan = "pro", ttl = "7d" });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.True(gateway.Host.Runtime.Overrides.TryFind("carol/dev", out var found));
        Assert.Equal("pro", found.Plan);
        using var deleted = await admin.DeleteAsync("/admin/v1/overrides/carol%2Fdev");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);

        var audit = logs.Collector.GetSnapshot().Where(r => r.Category == "Floodgate.Admin").Select(r => r.Message).ToList();
        Assert.Equal(2, audit.Count);
        Assert.StartsWith("Admin change by token release-bot: change plan carol/dev: (claim or default) -> pro until ", audit[0], StringComparison.Ordinal);
        Assert.Equal("Admin change by token release-bot: delete override carol/dev: removed", audit[1]);
    }
}
