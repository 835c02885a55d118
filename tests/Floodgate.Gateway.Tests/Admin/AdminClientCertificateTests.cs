using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// Client certificates on the admin port (policy <c>admin.client_certificates</c>): a real gateway whose admin port is
/// https, and real HttpClients over TLS on loopback, each presenting a certificate made by the test (or none).
/// </summary>
public sealed class AdminClientCertificateTests
{
    [Fact]
    public async Task A_certificate_of_the_given_authority_is_admitted_and_none_or_another_is_refused_with_401_and_logged()
    {
        using var certificates = TestCertificates.Create();
        using var other = TestCertificates.Create("Another CA");
        using var token = new AdminTokens();
        using var logs = new FakeLoggerProvider();
        await using var gateway = await StartAsync(certificates, token, $"client_certificates: {{ ca_file: {certificates.Authority} }}", logs);

        Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, certificates, certificates, token.Secret));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, certificates, null, token.Secret));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, certificates, other, token.Secret));

        // The certificate is required besides the token, not instead of it.
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, certificates, certificates, null));

        // /healthz stays open, with no certificate or token.
        using (var client = Client(gateway, certificates, null))
        using (var health = await client.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        var refused = logs.Collector.GetSnapshot().Where(r => r.Message.StartsWith("Admin request refused", StringComparison.Ordinal)).Select(r => r.Message).ToList();
        Assert.Equal(3, refused.Count);
        Assert.Contains("(no client certificate): GET /admin/v1/status from 127.0.0.1", refused[0], StringComparison.Ordinal);
        Assert.Contains("(client certificate not trusted)", refused[1], StringComparison.Ordinal);
        Assert.Contains("(no bearer token)", refused[2], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pinned_thumbprint_admits_that_certificate_alone()
    {
        using var certificates = TestCertificates.Create();
        using var pinned = TestCertificates.Create("Pinned CA");
        using var token = new AdminTokens();
        using (var certificate = X509CertificateLoader.LoadCertificateFromFile(pinned.ClientCertificate))
        {
            var thumbprint = Convert.ToHexString(certificate.GetCertHash(HashAlgorithmName.SHA256));
            await using var gateway = await StartAsync(certificates, token, $"client_certificates: {{ thumbprints: [\"{thumbprint}\"] }}");

            Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, certificates, pinned, token.Secret));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, certificates, certificates, token.Secret));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(gateway, certificates, null, token.Secret));
        }
    }

    [Fact]
    public async Task Client_certificates_on_an_http_admin_port_stop_the_start()
    {
        using var certificates = TestCertificates.Create();
        using var token = new AdminTokens();
        var error = await Assert.ThrowsAnyAsync<Exception>(() => TestGateway.StartAsync($"upstream: {{upstream}}\n{token.Section}\n  client_certificates: {{ ca_file: {certificates.Authority} }}"));
        Assert.Contains("admin.client_certificates needs the admin port on https", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_malformed_thumbprint_or_an_empty_section_is_refused_naming_the_field()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:1
            admin:
              client_certificates: { thumbprints: ["abc"] }
            """, "policy.yaml"));
        Assert.Contains("admin.client_certificates.thumbprints", error.Message, StringComparison.Ordinal);

        error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:1
            admin:
              client_certificates: { ca_file: /no/such/ca.pem }
            """, "policy.yaml"));
        Assert.Contains("admin.client_certificates.ca_file", error.Message, StringComparison.Ordinal);
    }

    private static Task<TestGateway> StartAsync(TestCertificates certificates, AdminTokens token, string clientCertificates, FakeLoggerProvider? logs = null) =>
        TestGateway.StartAsync(
            $"upstream: {{upstream}}\n{token.Section}\n  {clientCertificates}",
            certificate: certificates.ServerCertificate,
            certificateKey: certificates.ServerKey,
            logs: logs,
            httpsAdmin: true);

    private static async Task<HttpStatusCode> StatusAsync(TestGateway gateway, TestCertificates server, TestCertificates? client, string? token)
    {
        using var http = Client(gateway, server, client);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/status");
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await http.SendAsync(request);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        return response.StatusCode;
    }

    /// <summary>A client of the admin port that trusts <paramref name="server"/>'s authority and presents <paramref name="client"/>'s certificate, if any.</summary>
    private static HttpClient Client(TestGateway gateway, TestCertificates server, TestCertificates? client)
    {
        Assert.Equal(Uri.UriSchemeHttps, gateway.Host.AdminAddress!.Scheme);
        var authority = X509CertificateLoader.LoadCertificateFromFile(server.Authority);
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(authority);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return certificate is X509Certificate2 presented && chain.Build(presented);
        };
        if (client is not null)
        {
            using var pem = X509Certificate2.CreateFromPemFile(client.ClientCertificate, client.ClientKey);
            handler.SslOptions.ClientCertificates = [X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null)];
        }

        return new HttpClient(handler) { BaseAddress = gateway.Host.AdminAddress, Timeout = TimeSpan.FromSeconds(30) };
    }
}
