using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests.Access;

/// <summary>Bypass rules and deny lists on a real gateway: real Kestrel, real HTTP clients, real signed tokens, real TLS.</summary>
public sealed class AccessTests
{
    [Fact]
    public async Task A_denied_address_or_range_is_answered_403_problem_json_before_any_other_work()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8]
            deny:
              addresses: [198.51.100.0/24, 203.0.113.9]
            edge:
              - name: per-ip
                limit: 2/min
            """);

        using var ranged = await gate.GetAsync("/a", forwardedFor: "198.51.100.7");
        Assert.Equal(HttpStatusCode.Forbidden, ranged.StatusCode);
        Assert.Equal("application/problem+json", ranged.Content.Headers.ContentType?.MediaType);
        using var body = JsonDocument.Parse(await ranged.Content.ReadAsStringAsync());
        Assert.Equal(403, body.RootElement.GetProperty("status").GetInt32());
        Assert.Equal("access", body.RootElement.GetProperty("tier").GetString());
        Assert.False(ranged.Headers.Contains("RateLimit"));

        Statuses.Expect([403, 403], await gate.StatusesAsync(2, "/a", forwardedFor: "203.0.113.9"));
        Statuses.Expect([403], await gate.StatusesAsync(1, "/a", forwardedFor: "::ffff:203.0.113.9"));
        Assert.Equal(0, gate.Upstream.Hits);

        // Denied requests were never counted: the edge budget of a neighbour is whole, and the denied IP charged nothing.
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", forwardedFor: "203.0.113.10"));
    }

    [Fact]
    public async Task A_denied_subject_is_answered_403_once_its_token_is_validated()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            deny:
              subjects: [mallory]
            user:
              - name: per-user
                limit: 5/min
            """);

        var mallory = gate.Identity.CreateToken(subject: "mallory");
        Statuses.Expect([403, 403], await gate.StatusesAsync(2, "/a", mallory));
        Statuses.Expect([200], await gate.StatusesAsync(1, "/a", gate.Identity.CreateToken(subject: "alice")));
        Assert.Equal(1, gate.Upstream.Hits);

        // A forged token naming mallory is not a validated subject: it is refused as invalid, not denied.
        using var forged = await gate.GetAsync("/a", gate.Identity.CreateUnsignedToken("mallory"));
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
    }

    [Fact]
    public async Task A_bypass_by_network_skips_its_tiers_only_and_is_counted()
    {
        using var counted = new BypassCounter();
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            trusted_proxies: [127.0.0.0/8]
            bypass:
              - name: our-services
                tiers: [edge]
                networks: [10.20.0.0/16]
            edge:
              - name: per-ip
                limit: 2/min
            global:
              - name: ceiling
                limit: 6/min
            """);

        Statuses.Expect([200, 200, 200, 200], await gate.StatusesAsync(4, "/a", forwardedFor: "10.20.3.4"));
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", forwardedFor: "198.51.100.1"));

        // The global tier is not skipped: the bypassed requests spent the one ceiling too (4 + 2 of 6).
        using var over = await gate.GetAsync("/a", forwardedFor: "10.20.3.4");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, over.StatusCode);
        Assert.Equal(5, counted.Count("our-services", "network"));
    }

    [Fact]
    public async Task A_bypass_by_secret_header_takes_the_secrets_of_its_file_and_nothing_else()
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-bypass-").FullName;
        try
        {
            var current = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            var previous = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
            await File.WriteAllTextAsync(Path.Combine(directory, "bypass.secret"), current + "\n" + previous + "\n");
            await using var gate = await TestGateway.StartAsync($$"""
                upstream: {upstream}
                bypass:
                  - name: batch-jobs
                    header: { name: X-Floodgate-Bypass, file: {{Path.Combine(directory, "bypass.secret")}} }
                edge:
                  - name: per-ip
                    limit: 1/min
                """);

            Statuses.Expect([200, 200, 200], await StatusesWithHeaderAsync(gate, current, 3));
            Statuses.Expect([200, 200], await StatusesWithHeaderAsync(gate, previous, 2));

            // A wrong secret, one of another length, an empty one, or the right one twice is limited as any request.
            Statuses.Expect([200, 429], await StatusesWithHeaderAsync(gate, current[..^1] + (current[^1] == '0' ? '1' : '0'), 2));
            Statuses.Expect([429], await StatusesWithHeaderAsync(gate, current + "00", 1));
            Statuses.Expect([429], await StatusesWithHeaderAsync(gate, string.Empty, 1));
            using var twice = new HttpRequestMessage(HttpMethod.Get, "/a");
            twice.Headers.TryAddWithoutValidation("X-Floodgate-Bypass", [current, current]);
            using var response = await gate.Client.SendAsync(twice);
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_bypass_by_claim_skips_the_user_tier_for_the_listed_clients()
    {
        await using var gate = await TestGateway.StartAsync("""
            upstream: {upstream}
            {identity}
            bypass:
              - name: internal-clients
                tiers: [user]
                claims: { azp: [billing, reports] }
            user:
              - name: per-user
                limit: 2/min
            """);

        var billing = gate.Identity.CreateToken(subject: "svc", claims: new Dictionary<string, object> { ["azp"] = "billing" });
        var other = gate.Identity.CreateToken(subject: "svc2", claims: new Dictionary<string, object> { ["azp"] = "mobile" });
        Statuses.Expect([200, 200, 200, 200], await gate.StatusesAsync(4, "/a", billing));
        Statuses.Expect([200, 200, 429], await gate.StatusesAsync(3, "/a", other));
    }

    [Fact]
    public async Task A_bypass_by_client_certificate_matches_its_thumbprint_on_the_tls_listener()
    {
        using var certificates = TestCertificates.Create();
        using var client = X509Certificate2.CreateFromPemFile(certificates.ClientCertificate, certificates.ClientKey);
        var thumbprint = Convert.ToHexString(client.GetCertHash(HashAlgorithmName.SHA256));
        await using var gate = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            bypass:
              - name: mesh
                client_certificates: ["{{string.Join(':', thumbprint.Chunk(2).Select(c => new string(c)))}}"]
            edge:
              - name: per-ip
                limit: 1/min
            """, certificate: certificates.ServerCertificate, certificateKey: certificates.ServerKey);

        using var withCertificate = Client(gate, certificates, client);
        using var without = Client(gate, certificates, null);
        for (var i = 0; i < 3; i++)
        {
            using var response = await withCertificate.GetAsync(new Uri("/a", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using var first = await without.GetAsync(new Uri("/a", UriKind.Relative));
        using var second = await without.GetAsync(new Uri("/a", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
    }

    [Fact]
    public void The_policy_names_each_bad_access_field_with_its_line()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:1
            deny:
              addresses: [300.1.2.3]
            bypass:
              - name: claims-at-the-edge
                claims: { azp: [billing] }
              - name: nothing
                tiers: [user]
              - name: bad-tier
                tiers: [edges]
                networks: [10.0.0.0/8]
              - name: short
                header: { name: X-B, env: FLOODGATE_TEST_UNSET_BYPASS }
              - name: bad-thumbprint
                client_certificates: [abc]
            """, "policy.yaml"));
        var text = string.Join("\n", error.Errors.Select(e => $"{e.Line} {e.Field} {e.Message}"));
        Assert.Contains("3 deny.addresses", text, StringComparison.Ordinal);
        Assert.Contains("5 bypass[0] The bypass rule 'claims-at-the-edge' matches claims: a claim is known only after the token is validated", text, StringComparison.Ordinal);
        Assert.Contains("7 bypass[1] The bypass rule 'nothing' names no means of matching", text, StringComparison.Ordinal);
        Assert.Contains("10 bypass[2].tiers 'edges' is not a tier", text, StringComparison.Ordinal);
        Assert.Contains("13 bypass[3].header.env the environment variable FLOODGATE_TEST_UNSET_BYPASS is not set", text, StringComparison.Ordinal);
        Assert.Contains("15 bypass[4].client_certificates 'abc' is not a SHA-256 thumbprint", text, StringComparison.Ordinal);
    }

    private static async Task<int[]> StatusesWithHeaderAsync(TestGateway gate, string secret, int count)
    {
        var statuses = new int[count];
        for (var i = 0; i < count; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/a");
            request.Headers.TryAddWithoutValidation("X-Floodgate-Bypass", secret);
            using var response = await gate.Client.SendAsync(request);
            statuses[i] = (int)response.StatusCode;
        }

        return statuses;
    }

    private static HttpClient Client(TestGateway gate, TestCertificates certificates, X509Certificate2? certificate)
    {
        var trusted = X509Certificate2.CreateFromPem(File.ReadAllText(certificates.Authority));
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(trusted);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return presented is X509Certificate2 leaf && chain.Build(leaf);
        };
        if (certificate is not null)
        {
            handler.SslOptions.ClientCertificates = [certificate];
        }

        return new HttpClient(handler) { BaseAddress = gate.Host.ProxyAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Counts <c>floodgate.access.bypassed</c> by rule and means while it lives.</summary>
    private sealed class BypassCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Dictionary<(string, string), long> _counts = [];

        public BypassCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "Floodgate.AspNetCore" && instrument.Name == "floodgate.access.bypassed")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                string? rule = null, means = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "rule")
                        rule = tag.Value as string;
                    else if (tag.Key == "means")
                        means = tag.Value as string;
                }

                lock (_counts)
                {
                    _counts[(rule ?? string.Empty, means ?? string.Empty)] = _counts.GetValueOrDefault((rule ?? string.Empty, means ?? string.Empty)) + value;
                }
            });
            _listener.Start();
        }

        public long Count(string rule, string means)
        {
            lock (_counts)
            {
                return _counts.GetValueOrDefault((rule, means));
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
