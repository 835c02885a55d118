using System.Net;
using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.Gateway.Tests;

public sealed class IdentityTests
{
    private const string Policy = """
        upstream: {upstream}
        {identity}
          anonymous: reject
        user:
          - name: per-user
            key: [subject]
            limit: 3/min
        """;

    public static TheoryData<string> BadTokens => ["none", "expired", "issuer", "audience", "signature", "malformed", "not-yet-valid", "crit"];

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_bad_token_is_answered_401_with_www_authenticate_and_never_reaches_the_upstream(string kind)
    {
        await using var gate = await TestGateway.StartAsync(Policy);
        var idp = gate.Identity;
        var now = gate.Time.GetUtcNow();
        var token = kind switch
        {
            "none" => idp.CreateUnsignedToken(now: now),
            "expired" => idp.CreateToken(now: now - TimeSpan.FromHours(2), lifetime: TimeSpan.FromHours(1)),
            "issuer" => idp.CreateToken(now: now, issuer: "http://127.0.0.1:1/evil"),
            "audience" => idp.CreateToken(now: now, audience: "another-api"),
            "signature" => idp.Sign(new SigningCredentials(new RsaSecurityKey(TestIdentityProvider.PooledRsa(40)) { KeyId = TestIdentityProvider.RsaKeyId }, SecurityAlgorithms.RsaSha256), now: now),
            "not-yet-valid" => idp.CreateToken(now: now, notBefore: now + TimeSpan.FromHours(1), lifetime: TimeSpan.FromHours(2)),
            "crit" => WithCriticalExtension(idp, now),
            _ => "this.is-not-a.jwt",
        };

        using var response = await gate.GetAsync("/orders/1", token);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = response.Headers.WwwAuthenticate.ToString();
        Assert.StartsWith("Bearer", challenge, StringComparison.Ordinal);
        Assert.Contains("error=\"invalid_token\"", challenge, StringComparison.Ordinal);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, gate.Upstream.Hits);
    }

    [Fact]
    public async Task Anonymous_requests_are_rejected_when_the_policy_says_so()
    {
        await using var gate = await TestGateway.StartAsync(Policy);
        using var response = await gate.GetAsync("/orders/1");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        Assert.Equal(0, gate.Upstream.Hits);
    }

    [Fact]
    public async Task Anonymous_requests_are_keyed_by_ip_in_the_user_tier_when_allowed()
    {
        await using var gate = await TestGateway.StartAsync(Policy.Replace("anonymous: reject", "anonymous: allow", StringComparison.Ordinal));
        Statuses.Expect([200, 200, 200, 429], await gate.StatusesAsync(4, "/orders/1"));

        // A signed-in user is not charged for the anonymous traffic from the same IP.
        using var alice = await gate.GetAsync("/orders/1", gate.Identity.CreateToken(now: gate.Time.GetUtcNow()));
        Assert.Equal(HttpStatusCode.OK, alice.StatusCode);
    }

    [Fact]
    public async Task An_edge_concurrency_lease_is_released_when_identity_answers_401()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
              anonymous: reject
            edge:
              - name: ip-inflight
                concurrency: 1
                lease_timeout: 1h
            """);

        using (var bad = await gate.GetAsync("/orders/1", "this.is-not-a.jwt"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        }

        using (var anonymous = await gate.GetAsync("/orders/1"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        using var good = await gate.GetAsync("/orders/1", gate.Identity.CreateToken(now: gate.Time.GetUtcNow()));
        Assert.Equal(HttpStatusCode.OK, good.StatusCode);
        using var again = await gate.GetAsync("/orders/1", gate.Identity.CreateToken(now: gate.Time.GetUtcNow()));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(2, gate.Upstream.Hits);
    }

    [Fact]
    public async Task An_edge_concurrency_lease_is_released_when_a_later_tier_rejects()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            edge:
              - name: ip-inflight
                concurrency: 1
                lease_timeout: 1h
            user:
              - name: per-user
                key: [subject]
                limit: 1/min
            """);

        var token = gate.Identity.CreateToken(now: gate.Time.GetUtcNow());
        Statuses.Expect([200, 429], await gate.StatusesAsync(2, "/orders/1", token));
        using var other = await gate.GetAsync("/orders/1", gate.Identity.CreateToken(subject: "bob", now: gate.Time.GetUtcNow()));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task Static_keys_keep_working_while_the_jwks_url_is_unreachable_and_other_tokens_are_answered_503()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-keys-").FullName;
        try
        {
            var live = TestIdentityProvider.PooledRsa(44);
            var pem = Path.Combine(directory, "live.pem");
            await File.WriteAllTextAsync(pem, live.ExportSubjectPublicKeyInfoPem());
            await using var gate = await TestGateway.StartAsync($$"""
                upstream: {upstream}
                identity:
                  jwt:
                    jwks_url: http://127.0.0.1:{{UnusedPort()}}/jwks
                    require_https: false
                    keys: [{{pem}}]
                    issuer: https://issuer.test
                    audiences: [api]
                  anonymous: reject
                """);
            var now = gate.Time.GetUtcNow();

            var good = gate.Identity.Sign(new SigningCredentials(new RsaSecurityKey(live) { KeyId = "live-1" }, SecurityAlgorithms.RsaSha256), now: now, issuer: "https://issuer.test");
            using (var ok = await gate.GetAsync("/orders/1", good))
            {
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            }

            // Only the unreachable keys could verify this one: 503 and a retry, never invalid_token, which would make
            // the client throw a possibly good token away.
            var other = gate.Identity.Sign(new SigningCredentials(new RsaSecurityKey(TestIdentityProvider.PooledRsa(45)) { KeyId = "remote-1" }, SecurityAlgorithms.RsaSha256), now: now, issuer: "https://issuer.test");
            using var unavailable = await gate.GetAsync("/orders/1", other);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.StatusCode);
            Assert.Empty(unavailable.Headers.WwwAuthenticate);
            Assert.InRange(unavailable.Headers.RetryAfter?.Delta ?? TimeSpan.Zero, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
            Assert.Equal("application/problem+json", unavailable.Content.Headers.ContentType?.MediaType);
            var body = await unavailable.Content.ReadAsStringAsync();
            Assert.Contains("\"tier\":\"identity\"", body, StringComparison.Ordinal);
            Assert.Contains("signing keys unavailable", body, StringComparison.Ordinal);
            Assert.Equal(1, gate.Upstream.Hits);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_rotated_key_with_a_new_kid_is_picked_up()
    {
        await using var gate = await TestGateway.StartAsync(Policy);
        var now = gate.Time.GetUtcNow();
        using (var first = await gate.GetAsync("/a", gate.Identity.CreateToken(TestIdentityProvider.EcKeyId, "alice", now)))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        var kid = gate.Identity.Rotate();

        // Unknown kids refresh the keys at a bounded rate (30 s by default), so forged kids cannot storm the JWKS.
        gate.Time.Advance(TimeSpan.FromSeconds(31));
        using var rotated = await gate.GetAsync("/a", gate.Identity.CreateToken(kid, "bob", now));
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
    }

    /// <summary>A token signed by the provider, otherwise valid, whose header lists an extension in <c>crit</c> (RFC 7515).</summary>
    private static string WithCriticalExtension(TestIdentityProvider idp, DateTimeOffset now) =>
        new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = idp.Issuer,
            Audience = TestIdentityProvider.DefaultAudience,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = now.UtcDateTime.AddHours(1),
            Claims = new Dictionary<string, object> { ["sub"] = "alice" },
            AdditionalHeaderClaims = new Dictionary<string, object> { ["crit"] = new[] { "urn:example:unknown" }, ["urn:example:unknown"] = true },
            SigningCredentials = idp.CredentialsFor(TestIdentityProvider.RsaKeyId),
        });

    /// <summary>A loopback port nothing listens on: bound and released, so connecting to it is refused.</summary>
    private static int UnusedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
