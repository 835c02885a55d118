using System.Net;
using System.Text;
using System.Text.Json;
using Floodgate.AspNetCore.RateLimitIds;
using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests.RateLimitIds;

/// <summary>The verifiable rate-limit id on a real gateway: issue, verify, rotation, forged and replayed ids, edge rules on it.</summary>
public sealed class RateLimitIdTests : IDisposable
{
    private const string Header = "x-ratelimit-user-id";
    private static readonly string SecretK1 = "k1-" + new string('a', 40);
    private static readonly string SecretK2 = "k2-" + new string('b', 40);

    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-rlid-").FullName;

    public RateLimitIdTests()
    {
        File.WriteAllText(Path.Combine(_directory, "k1"), SecretK1 + "\n");
        File.WriteAllText(Path.Combine(_directory, "k2"), SecretK2 + "\n");
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Policy(string onInvalid = "ignore", string keys = "k2, k1", string noIdLimit = "2/min") => $$"""
        upstream: {upstream}
        {identity}
        ratelimit_id:
          keys:
        {{string.Join("\n", keys.Split(", ").Select(k => $"    - {{ id: {k}, file: {Path.Combine(_directory, k)} }}"))}}
          claims: [account]
          endpoints: [orders, search]
          issue: { path: /.well-known/ratelimit-id, cookie: fg_rlid }
          on_invalid: {{onInvalid}}
        edge:
          - name: per-id
            match: { ratelimit_id: verified }
            key: [header:x-ratelimit-user-id]
            limit: 3/min
          - name: no-id
            match: { ratelimit_id: absent }
            key: [client_ip]
            limit: {{noIdLimit}}
        """;

    [Fact]
    public async Task The_issue_endpoint_gives_a_valid_token_its_id_in_the_header_the_body_and_a_secure_cookie()
    {
        await using var gate = await TestGateway.StartAsync(Policy(noIdLimit: "10/min"));
        var token = gate.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "acme" });
        using var issued = await gate.GetAsync("/.well-known/ratelimit-id", token);
        Assert.Equal(HttpStatusCode.OK, issued.StatusCode);
        var id = issued.Headers.GetValues(Header).Single();
        Assert.Equal(RateLimitId.Create(Encoding.UTF8.GetBytes(SecretK2), "k2", "alice", "acme"), id);
        Assert.StartsWith("k2.", id, StringComparison.Ordinal);
        using var body = JsonDocument.Parse(await issued.Content.ReadAsStringAsync());
        Assert.Equal(id, body.RootElement.GetProperty("id").GetString());
        Assert.Equal(RateLimitId.ForEndpoint(id, "orders"), body.RootElement.GetProperty("endpoints").GetProperty("orders").GetString());
        Assert.Equal($"fg_rlid={id}; Path=/; Secure; HttpOnly; SameSite=Strict", issued.Headers.GetValues("Set-Cookie").Single());
        Assert.Equal(0, gate.Upstream.Hits);

        // Another account of the same subject is another id: the claims are part of it.
        using var other = await gate.GetAsync("/.well-known/ratelimit-id", gate.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "globex" }));
        Assert.NotEqual(id, other.Headers.GetValues(Header).Single());

        // No token: no id.
        using var anonymous = await gate.GetAsync("/.well-known/ratelimit-id");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.False(anonymous.Headers.Contains(Header));
    }

    [Fact]
    public async Task The_issue_endpoint_is_off_by_default()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            """);
        using var response = await gate.GetAsync("/.well-known/ratelimit-id", gate.Identity.CreateToken());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains(Header));
        Assert.Equal(1, gate.Upstream.Hits);
    }

    [Fact]
    public async Task An_edge_rule_on_the_verified_id_sheds_one_users_flood_before_any_token_is_checked()
    {
        await using var gate = await TestGateway.StartAsync(Policy());
        var id = Id("k2", SecretK2, "alice", "acme");

        // A token that fails its signature check: while the id's budget lasts, the edge admits and the token is refused
        // 401; past it, the edge sheds the request 429 without looking at the token.
        var bad = gate.Identity.CreateUnsignedToken("alice");
        Statuses.Expect([401, 401, 401, 429, 429], await StatusesAsync(gate, 5, id, bad));

        // Another user's id has its own budget; a request without an id falls to the lower no-id rule.
        Statuses.Expect([200, 200, 200, 429], await StatusesAsync(gate, 4, Id("k2", SecretK2, "bob", "acme"), gate.Identity.CreateToken(subject: "bob", claims: new Dictionary<string, object> { ["account"] = "acme" })));
        Statuses.Expect([200, 200, 429], await StatusesAsync(gate, 3, null, gate.Identity.CreateToken(subject: "carol")));
    }

    [Fact]
    public async Task A_forged_id_is_answered_by_policy_or_counted_as_no_id()
    {
        var forged = Id("k2", SecretK2, "alice", "acme");
        forged = forged[..^2] + (forged[^2] == 'A' ? "B" : "A") + forged[^1];
        var unknownKey = Id("k9", SecretK2, "alice", "acme");
        var otherSecret = Id("k2", "k2-" + new string('c', 40), "alice", "acme");
        await using (var strict = await TestGateway.StartAsync(Policy(onInvalid: "unauthorized")))
        {
            var token = strict.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "acme" });
            foreach (var wrong in new[] { forged, unknownKey, otherSecret, "k2.short.id", "not an id", $"k2.{new string('!', 22)}.{new string('*', 22)}" })
            {
                using var response = await SendAsync(strict, wrong, token);
                Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            }

            Assert.Equal(0, strict.Upstream.Hits);
        }

        await using var lenient = await TestGateway.StartAsync(Policy(onInvalid: "ignore"));
        var alice = lenient.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "acme" });

        // Ignored: each forged id would be a fresh budget if it were counted on; it falls to the no-id rule instead,
        // the wrong header removed before the request is forwarded.
        Statuses.Expect([200, 200, 429], [
            .. await StatusesAsync(lenient, 1, forged, alice),
            .. await StatusesAsync(lenient, 1, unknownKey, alice),
            .. await StatusesAsync(lenient, 1, otherSecret, alice)]);
        Assert.Equal(2, lenient.Upstream.Hits);
    }

    [Fact]
    public async Task An_id_replayed_by_another_user_is_answered_once_the_token_names_them()
    {
        await using var gate = await TestGateway.StartAsync(Policy(onInvalid: "too_many_requests"));
        var aliceId = Id("k2", SecretK2, "alice", "acme");
        var bob = gate.Identity.CreateToken(subject: "bob", claims: new Dictionary<string, object> { ["account"] = "acme" });
        using var replayed = await SendAsync(gate, aliceId, bob);
        Assert.Equal(HttpStatusCode.TooManyRequests, replayed.StatusCode);

        // The same subject in another account is another user too.
        using var otherAccount = await SendAsync(gate, aliceId, gate.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "globex" }));
        Assert.Equal(HttpStatusCode.TooManyRequests, otherAccount.StatusCode);

        using var own = await SendAsync(gate, aliceId, gate.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "acme" }));
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        Assert.Equal(1, gate.Upstream.Hits);
    }

    [Fact]
    public async Task The_previous_key_verifies_until_it_is_removed_and_a_rotated_secret_file_reloads_the_policy()
    {
        await using var gate = await TestGateway.StartAsync(Policy(onInvalid: "unauthorized"), watch: true);
        var alice = gate.Identity.CreateToken(subject: "alice", claims: new Dictionary<string, object> { ["account"] = "acme" });
        var oldId = Id("k1", SecretK1, "alice", "acme");
        using (var response = await SendAsync(gate, oldId, alice))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The current key's secret file is rewritten: ids under the old k2 secret stop verifying, the new ones start.
        var newSecret = "k2-" + new string('d', 40);
        await File.WriteAllTextAsync(Path.Combine(_directory, "k2"), newSecret + "\n");
        var newId = Id("k2", newSecret, "alice", "acme");
        Assert.True(await Eventually.HoldsAsync(async () =>
        {
            using var response = await SendAsync(gate, newId, alice);
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(15)), "The rotated secret was not put in force within 15 s.");
        using (var stale = await SendAsync(gate, Id("k2", SecretK2, "alice", "acme"), alice))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, stale.StatusCode);
        }

        // The previous key is dropped from the policy: its ids are refused.
        await gate.WritePolicyAsync(Policy(onInvalid: "unauthorized", keys: "k2"));
        Assert.Empty(gate.Host.Reload());
        using var dropped = await SendAsync(gate, oldId, alice);
        Assert.Equal(HttpStatusCode.Unauthorized, dropped.StatusCode);
    }

    [Fact]
    public void The_policy_refuses_a_short_secret_a_bad_key_id_and_a_match_on_ids_without_the_section()
    {
        File.WriteAllText(Path.Combine(_directory, "short"), "too-short\n");
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($$"""
            upstream: http://127.0.0.1:1
            ratelimit_id:
              keys:
                - { id: "bad id", file: {{Path.Combine(_directory, "k1")}} }
                - { id: k3, file: {{Path.Combine(_directory, "short")}} }
            """, "policy.yaml"));
        var text = string.Join("\n", error.Errors.Select(e => $"{e.Line} {e.Field} {e.Message}"));
        Assert.Contains("4 ratelimit_id.keys[0].id is required: 1 to 32 of", text, StringComparison.Ordinal);
        Assert.Contains("5 ratelimit_id.keys[1].file a secret must be at least 32 characters", text, StringComparison.Ordinal);

        var orphan = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:1
            edge:
              - name: per-id
                match: { ratelimit_id: verified }
                key: [header:x-ratelimit-user-id]
                limit: 3/min
            """, "policy.yaml"));
        Assert.Contains(orphan.Errors, e => e.Field == "per-id.match.ratelimit_id" && e.Message.Contains("needs a ratelimit_id section", StringComparison.Ordinal));
    }

    private static string Id(string kid, string secret, string subject, string account) =>
        RateLimitId.Create(Encoding.UTF8.GetBytes(secret), kid, subject, account);

    private static async Task<HttpResponseMessage> SendAsync(TestGateway gate, string? id, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
        if (id is not null)
        {
            request.Headers.TryAddWithoutValidation(Header, id);
        }

        if (token is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        return await gate.Client.SendAsync(request);
    }

    private static async Task<int[]> StatusesAsync(TestGateway gate, int count, string? id, string? token)
    {
        var statuses = new int[count];
        for (var i = 0; i < count; i++)
        {
            using var response = await SendAsync(gate, id, token);
            statuses[i] = (int)response.StatusCode;
        }

        return statuses;
    }
}
