using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

/// <summary>API keys through the admin API and the proxy: real Kestrel, real redis-server, real signed JWTs.</summary>
public sealed class ApiKeyGatewayTests
{
    private static string Policy(AdminTokens token, string store = "", string extra = "") => $$"""
        upstream: {upstream}
        {{store}}
        {identity}
        api_keys:
          header: X-API-Key
        default_plan: free
        plans:
          free: { per_user: 5/h }
          pro: { per_user: 8/h }
        user:
          - name: per-user
            limit: plan.per_user
            algorithm: quota
            calendar: false
        {{extra}}
        {{token.Section}}
        """;

    [Fact]
    public async Task A_key_is_created_used_rotated_with_both_valid_and_revoked_on_both_replicas_within_a_second()
    {
        using var redis = RedisServer.Start();
        using var token = new AdminTokens();
        var store = $"store: {{ kind: redis, configuration: \"{redis.Configuration}\", on_failure: closed, timeout: 2s }}";
        await using var a = await TestGateway.StartAsync(Policy(token, store));
        await using var b = await TestGateway.StartAsync(Policy(token, store));
        using var adminA = token.Client(a.Host.AdminAddress!);

        using var created = await adminA.PostAsJsonAsync("/admin/v1/keys", new { subject = "alice", account = "acme", plan = "pro" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
        var key = body.GetProperty("key").GetString()!;
        var id = body.GetProperty("apiKey").GetProperty("id").GetString()!;
        Assert.StartsWith($"fg_live_{id}_", key, StringComparison.Ordinal);
        Assert.Equal($"/admin/v1/keys/{id}", created.Headers.Location!.OriginalString);

        // Used at once on either replica (the other reads it once if its mirror has not caught up), as a Bearer token
        // or in the configured header; pro's 8 an hour shared by both.
        Assert.Equal(new[] { 200, 200 }, await a.StatusesAsync(2, "/x", key));
        Assert.Equal(new[] { 200, 200 }, await b.StatusesAsync(2, "/x", key));
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/x"))
        {
            request.Headers.Add("X-API-Key", key);
            using var response = await b.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The secret is never shown again.
        var read = await adminA.GetStringAsync($"/admin/v1/keys/{id}");
        Assert.DoesNotContain(key[^32..], read, StringComparison.Ordinal);
        Assert.Equal("acme", JsonDocument.Parse(read).RootElement.GetProperty("account").GetString());

        // Rotated on B: the old key and the new one are both valid, on both replicas.
        using var adminB = token.Client(b.Host.AdminAddress!);
        using var rotated = await adminB.PostAsJsonAsync($"/admin/v1/keys/{id}/rotate", new { grace = "1h" });
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        var newKey = JsonDocument.Parse(await rotated.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        Assert.NotEqual(key, newKey);
        Assert.True(await WithinASecondAsync(async () => (await a.StatusesAsync(1, "/x", newKey))[0] == 200));
        Assert.Equal(new[] { 200 }, await b.StatusesAsync(1, "/x", newKey));
        Assert.Equal(new[] { 200, 429 }, await a.StatusesAsync(2, "/x", key)); // 8 used between both replicas and both keys

        // Revoked on A: B refuses both keys within a second. A refused request consumes nothing, so polling costs nothing.
        using var revoke = await adminA.DeleteAsync($"/admin/v1/keys/{id}");
        Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        var watch = Stopwatch.StartNew();
        Assert.True(await WithinASecondAsync(async () => (await b.StatusesAsync(1, "/x", newKey))[0] == 401), $"still accepted after {watch.Elapsed}");
        Assert.Equal(new[] { 401, 401 }, await a.StatusesAsync(2, "/x", newKey));
        Assert.Equal(new[] { 401 }, await b.StatusesAsync(1, "/x", key));
        using var gone = await adminB.GetAsync($"/admin/v1/keys/{id}");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Unknown_malformed_and_expired_keys_are_401_and_a_rotated_key_lapses_after_its_grace()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync(Policy(token));
        using var admin = token.Client(gateway.Host.AdminAddress!);

        using var unknown = await gateway.GetAsync("/x", "fg_live_aaaaaaaaaaaa_0123456789ABCDEFGHIJKLMNOPQRSTUV");
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Contains("unknown API key", unknown.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        using var malformed = await gateway.GetAsync("/x", "fg_live_nope");
        Assert.Equal(HttpStatusCode.Unauthorized, malformed.StatusCode);
        Assert.Contains("malformed API key", malformed.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

        var (key, id) = await CreateAsync(admin, new { subject = "bob", ttl = "2h" });
        Assert.Equal(new[] { 200 }, await gateway.StatusesAsync(1, "/x", key));

        // Rotated with a 10 minute grace: both keys until then, only the new one after.
        using var rotated = await admin.PostAsJsonAsync($"/admin/v1/keys/{id}/rotate", new { grace = "10m" });
        var newKey = JsonDocument.Parse(await rotated.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
        Assert.Equal(new[] { 200, 200 }, (int[])[.. await gateway.StatusesAsync(1, "/x", key), .. await gateway.StatusesAsync(1, "/x", newKey)]);
        gateway.Time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(new[] { 401, 200 }, (int[])[.. await gateway.StatusesAsync(1, "/x", key), .. await gateway.StatusesAsync(1, "/x", newKey)]);

        // The key's own expiry, on the gateway's clock.
        gateway.Time.Advance(TimeSpan.FromMinutes(110));
        using var expired = await gateway.GetAsync("/x", newKey);
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Contains("API key expired", expired.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

        // Its last use is shown, to the second.
        var view = JsonDocument.Parse(await admin.GetStringAsync($"/admin/v1/keys/{id}")).RootElement;
        Assert.Equal(gateway.Time.GetUtcNow().AddMinutes(-110).ToUnixTimeSeconds(), view.GetProperty("lastUsedAt").GetDateTimeOffset().ToUnixTimeSeconds());
    }

    [Fact]
    public async Task A_key_and_a_jwt_for_the_same_subject_share_its_budgets_and_a_route_can_accept_one_kind()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync(Policy(token, extra: """
            routes:
              - { id: keys-only, path: "/keys-only/{**rest}", destinations: ["{upstream}"], credentials: api_key }
              - { id: jwt-only, path: "/jwt-only/{**rest}", destinations: ["{upstream}"], credentials: jwt }
              - { id: any, path: "/{**rest}", destinations: ["{upstream}"], order: 100 }
            """).Replace("upstream: {upstream}\n", string.Empty, StringComparison.Ordinal));
        using var admin = token.Client(gateway.Host.AdminAddress!);
        var (key, _) = await CreateAsync(admin, new { subject = "carol" });
        var jwt = gateway.Identity.CreateToken(subject: "carol");

        // Free: 5 an hour for carol, whichever credential she shows.
        Assert.Equal(new[] { 200, 200, 200 }, await gateway.StatusesAsync(3, "/x", jwt));
        Assert.Equal(new[] { 200, 200, 429 }, await gateway.StatusesAsync(3, "/x", key));
        Assert.Equal(new[] { 429 }, await gateway.StatusesAsync(1, "/x", jwt));

        // Per route: a JWT where only keys are accepted, and a key where only JWTs are, are 401 (before any budget).
        var dave = gateway.Identity.CreateToken(subject: "dave");
        var (daveKey, _) = await CreateAsync(admin, new { subject = "dave" });
        Assert.Equal(new[] { 401 }, await gateway.StatusesAsync(1, "/keys-only/a", dave));
        Assert.Equal(new[] { 200 }, await gateway.StatusesAsync(1, "/keys-only/a", daveKey));
        Assert.Equal(new[] { 401 }, await gateway.StatusesAsync(1, "/jwt-only/a", daveKey));
        Assert.Equal(new[] { 200 }, await gateway.StatusesAsync(1, "/jwt-only/a", dave));
    }

    [Fact]
    public async Task Bad_key_requests_are_400s_naming_the_field_and_keys_need_the_policy_section()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync(Policy(token));
        using var admin = token.Client(gateway.Host.AdminAddress!);

        foreach (var (request, field) in new (object, string)[]
        {
            (new { account = "acme" }, "subject"),
            (new { subject = new string('s', 257) }, "subject"),
            (new { subject = "erin", plan = "platinum" }, "plan"),
            (new { subject = "erin", ttl = "-5m" }, "ttl"),
            (new { subject = "erin", account = "" }, "account"),
        })
        {
            using var response = await admin.PostAsJsonAsync("/admin/v1/keys", request);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.True(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("errors").TryGetProperty(field, out _), field);
        }

        using var badId = await admin.GetAsync("/admin/v1/keys/NOT-AN-ID");
        Assert.Equal(HttpStatusCode.BadRequest, badId.StatusCode);
        using var missing = await admin.DeleteAsync("/admin/v1/keys/aaaaaaaaaaaa");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var badGrace = await admin.PostAsJsonAsync("/admin/v1/keys/aaaaaaaaaaaa/rotate", new { grace = "90d" });
        Assert.Equal(HttpStatusCode.BadRequest, badGrace.StatusCode);

        // Without the section no key can be used, so none is made.
        await using var plain = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            {{token.Section}}
            """);
        using var plainAdmin = token.Client(plain.Host.AdminAddress!);
        using var refused = await plainAdmin.PostAsJsonAsync("/admin/v1/keys", new { subject = "erin" });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
    }

    internal static async Task<(string Key, string Id)> CreateAsync(HttpClient admin, object request)
    {
        using var created = await admin.PostAsJsonAsync("/admin/v1/keys", request);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
        return (body.GetProperty("key").GetString()!, body.GetProperty("apiKey").GetProperty("id").GetString()!);
    }

    private static async Task<bool> WithinASecondAsync(Func<Task<bool>> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(1))
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }
}
