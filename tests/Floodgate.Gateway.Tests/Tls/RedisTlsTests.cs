using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests;

/// <summary>The policy's <c>store.tls_*</c> fields: checked at load, and carried to a real TLS-only redis-server.</summary>
public sealed class RedisTlsTests
{
    [Fact]
    public async Task A_gateway_whose_policy_trusts_the_private_CA_shares_its_limits_through_a_TLS_only_redis()
    {
        using var certificates = TestCertificates.Create();
        using var redis = RedisServer.StartTls(certificates.ServerCertificate, certificates.ServerKey, certificates.Authority, (certificates.ClientCertificate, certificates.ClientKey));
        await using var gate = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            store:
              kind: redis
              configuration: "{{redis.Configuration}}"
              on_failure: closed
              timeout: 2s
              key_prefix: gwtls
              tls_ca: {{certificates.Authority}}
              tls_client_cert: {{certificates.ClientCertificate}}
              tls_client_key: {{certificates.ClientKey}}
            edge:
              - name: ip
                limit: 3/min
            """);

        // on_failure: closed would answer 503 if the store could not reach Redis over TLS.
        Statuses.Expect([200, 200, 200, 429, 429], await gate.StatusesAsync(5, "/a"));
        Assert.Equal("reachable", (await gate.ReadinessAsync()).GetProperty("store_status").GetString());
        Assert.NotEmpty(redis.Cli("--scan", "--pattern", "gwtls:*"));
    }

    [Fact]
    public void Tls_files_are_read_and_checked_when_the_policy_is_loaded()
    {
        using var certificates = TestCertificates.Create();
        var policy = PolicyLoader.Parse($"""
            upstream: http://127.0.0.1:5000
            store:
              kind: redis
              configuration: "redis:6379"
              tls_ca: {certificates.Authority}
              tls_client_cert: {certificates.ClientCertificate}
              tls_client_key: {certificates.ClientKey}
            """, "p.yaml");
        Assert.Equal(certificates.Authority, policy.RedisStore!.TrustedCertificateAuthority);
        Assert.Equal(certificates.ClientCertificate, policy.RedisStore.ClientCertificate);
        Assert.Equal(certificates.ClientKey, policy.RedisStore.ClientCertificateKey);

        var missing = Path.Combine(certificates.Directory, "missing.pem");
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($"""
            upstream: http://127.0.0.1:5000
            store:
              kind: redis
              configuration: "redis:6379"
              tls_ca: {missing}
              tls_client_key: {certificates.ClientKey}
            """, "bad.yaml"));
        var messages = error.Errors.Select(e => e.ToString()).ToList();
        Assert.Equal(2, messages.Count);
        Assert.Equal($"bad.yaml:5:11: store.tls_ca: the CA certificate file '{missing}' does not exist.", messages[0]);
        Assert.Equal("bad.yaml:6:19: store.tls_client_key: a client key needs its certificate: set tls_client_cert too.", messages[1]);

        // A key where the CA should be; a certificate with another certificate's key.
        error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($"""
            upstream: http://127.0.0.1:5000
            store:
              kind: redis
              configuration: "redis:6379"
              tls_ca: {certificates.ServerKey}
              tls_client_cert: {certificates.ClientCertificate}
              tls_client_key: {certificates.ServerKey}
            """, "bad.yaml"));
        messages = [.. error.Errors.Select(e => e.ToString())];
        Assert.Equal(2, messages.Count);
        Assert.Equal($"bad.yaml:5:11: store.tls_ca: '{certificates.ServerKey}' holds no PEM certificate (-----BEGIN CERTIFICATE-----).", messages[0]);
        Assert.StartsWith($"bad.yaml:6:20: store.tls_client_cert: '{certificates.ClientCertificate}' with the key '{certificates.ServerKey}' cannot be used:", messages[1], StringComparison.Ordinal);
    }
}
