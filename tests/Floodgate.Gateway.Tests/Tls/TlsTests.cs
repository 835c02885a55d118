using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Floodgate.Gateway.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// The proxy on https: real TLS on Kestrel, with a private CA, an intermediate and a leaf made here, and clients that
/// trust only the root, so a handshake succeeds only when the gateway sends the full chain.
/// </summary>
public sealed class TlsTests : IDisposable
{
    private const string Policy = """
        upstream: {upstream}
        edge:
          - name: per-ip
            key: [client_ip]
            limit: 3/min
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-tls-test-").FullName;
    private readonly TestAuthority _authority = new();

    private string CertificatePath => Path.Combine(_directory, "tls.crt");

    private string KeyPath => Path.Combine(_directory, "tls.key");

    public void Dispose()
    {
        _authority.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task The_https_listener_serves_http2_and_http11_with_the_limits_and_their_headers()
    {
        using var leaf = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        WritePem(leaf, CertificatePath, KeyPath);
        await using var gate = await TestGateway.StartAsync(Policy, certificate: CertificatePath, certificateKey: KeyPath);
        Assert.Equal("https", gate.Host.ProxyAddress.Scheme);

        using var client = TrustingClient(gate.Host.ProxyAddress, out _);
        var versions = new List<Version>();
        var statuses = new List<int>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.SendAsync(Request("/orders/" + i, HttpVersion.Version20));
            versions.Add(response.Version);
            statuses.Add((int)response.StatusCode);
            if (i == 0)
            {
                Assert.Equal("\"per-ip\";r=2;t=20", response.Header("RateLimit"));
                Assert.Equal("\"per-ip\";q=3;w=60", response.Header("RateLimit-Policy"));
            }
        }

        Assert.Equal([200, 200, 200, 429], statuses);
        Assert.All(versions, v => Assert.Equal(HttpVersion.Version20, v));

        // HTTP/1.1 over TLS reaches the same gate and the same budget.
        using var http11 = await client.SendAsync(Request("/orders/9", HttpVersion.Version11));
        Assert.Equal(HttpVersion.Version11, http11.Version);
        Assert.Equal(HttpStatusCode.TooManyRequests, http11.StatusCode);
        Assert.NotNull(http11.Headers.RetryAfter);
    }

    [Fact]
    public async Task A_client_that_does_not_trust_the_authority_fails_the_handshake()
    {
        using var leaf = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        WritePem(leaf, CertificatePath, keyPath: null);
        await using var gate = await TestGateway.StartAsync(Policy, certificate: CertificatePath);

        using var untrusting = new HttpClient(new SocketsHttpHandler()) { BaseAddress = gate.Host.ProxyAddress, Timeout = TimeSpan.FromSeconds(30) };
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => untrusting.GetAsync(new Uri("/a", UriKind.Relative)));
        Assert.IsType<AuthenticationException>(error.InnerException);

        // The same listener, with the key in the certificate file, serves a client that trusts the root.
        using var client = TrustingClient(gate.Host.ProxyAddress, out _);
        using var response = await client.SendAsync(Request("/a", HttpVersion.Version20));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_renewed_certificate_serves_new_connections_and_a_bad_file_keeps_the_last_good_one()
    {
        using var first = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var renewed = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(30));
        WritePem(first, CertificatePath, KeyPath);
        await using var gate = await TestGateway.StartAsync(Policy, certificate: CertificatePath, certificateKey: KeyPath);
        Assert.Equal(first.Thumbprint, await ServedThumbprintAsync(gate.Host.ProxyAddress));

        WritePem(renewed, CertificatePath, KeyPath);
        Assert.True(
            await EventuallyAsync(async () => await ServedThumbprintAsync(gate.Host.ProxyAddress) == renewed.Thumbprint),
            "The renewed certificate was not served within the deadline.");
        Assert.True(await EventuallyAsync(async () => await ReloadsAsync(gate, "applied") >= 1));

        // A truncated certificate file is refused, counted, and the renewed certificate goes on serving.
        var refusedBefore = await ReloadsAsync(gate, "refused");
        await File.WriteAllTextAsync(CertificatePath, "-----BEGIN CERTIFICATE-----\nMIIB\n");
        Assert.True(
            await EventuallyAsync(async () => await ReloadsAsync(gate, "refused") > refusedBefore),
            "The bad certificate file was not refused within the deadline.");
        Assert.Equal(renewed.Thumbprint, await ServedThumbprintAsync(gate.Host.ProxyAddress));
    }

    [Fact]
    public async Task A_certificate_directory_reached_through_a_swapped_link_is_followed()
    {
        // A deploy tool's layout: current -> releases/v1, replaced by a rename; the gateway is given current/tls.crt.
        using var first = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var renewed = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(30));
        using var fixedUp = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(60));
        var releases = Path.Combine(_directory, "releases");
        foreach (var release in new[] { "v1", "v2", "v3" })
        {
            Directory.CreateDirectory(Path.Combine(releases, release));
        }

        WritePem(first, Path.Combine(releases, "v1", "tls.crt"), Path.Combine(releases, "v1", "tls.key"));
        WritePem(renewed, Path.Combine(releases, "v2", "tls.crt"), Path.Combine(releases, "v2", "tls.key"));
        SymbolicLinks.Swap(Path.Combine(_directory, "current"), Path.Combine("releases", "v1"));
        await using var gate = await TestGateway.StartAsync(
            Policy, certificate: Path.Combine(_directory, "current", "tls.crt"), certificateKey: Path.Combine(_directory, "current", "tls.key"));
        Assert.Equal(first.Thumbprint, await ServedThumbprintAsync(gate.Host.ProxyAddress));

        SymbolicLinks.Swap(Path.Combine(_directory, "current"), Path.Combine("releases", "v2"));
        Assert.True(
            await EventuallyAsync(async () => await ServedThumbprintAsync(gate.Host.ProxyAddress) == renewed.Thumbprint),
            "The certificate of the release the link was swapped to was not served within the deadline.");

        // A release holding no usable certificate is refused, and the last good one goes on serving.
        var refusedBefore = await ReloadsAsync(gate, "refused");
        await File.WriteAllTextAsync(Path.Combine(releases, "v3", "tls.crt"), "-----BEGIN CERTIFICATE-----\nMIIB\n");
        await File.WriteAllTextAsync(Path.Combine(releases, "v3", "tls.key"), string.Empty);
        SymbolicLinks.Swap(Path.Combine(_directory, "current"), Path.Combine("releases", "v3"));
        Assert.True(
            await EventuallyAsync(async () => await ReloadsAsync(gate, "refused") > refusedBefore),
            "The bad release was not refused within the deadline.");
        Assert.Equal(renewed.Thumbprint, await ServedThumbprintAsync(gate.Host.ProxyAddress));

        // The watch moved to the new release with the link: fixing the files there is picked up.
        WritePem(fixedUp, Path.Combine(releases, "v3", "tls.crt"), Path.Combine(releases, "v3", "tls.key"));
        Assert.True(
            await EventuallyAsync(async () => await ServedThumbprintAsync(gate.Host.ProxyAddress) == fixedUp.Thumbprint),
            "The certificate written into the new release was not served within the deadline.");
    }

    [Fact]
    public async Task A_renewal_issued_ahead_of_the_clock_is_applied_once_it_is_valid()
    {
        using var first = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        WritePem(first, CertificatePath, KeyPath);
        await using var gate = await TestGateway.StartAsync(Policy, certificate: CertificatePath, certificateKey: KeyPath);

        // Valid from 2 s ahead of the gateway's clock: refused now, and tried again without another change to the files.
        using var early = _authority.IssueServer(gate.Time.GetUtcNow().AddSeconds(2), DateTimeOffset.UtcNow.AddDays(30));
        var refusedBefore = await ReloadsAsync(gate, "refused");
        WritePem(early, CertificatePath, KeyPath);
        Assert.True(await EventuallyAsync(async () => await ReloadsAsync(gate, "refused") > refusedBefore), "The early certificate was not refused.");
        Assert.Equal(first.Thumbprint, await ServedThumbprintAsync(gate.Host.ProxyAddress, gate.Time.GetUtcNow()));

        // The retry runs on the gateway's clock; the client judges validity on that clock too, as the real one lags.
        gate.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(
            await EventuallyAsync(async () => await ServedThumbprintAsync(gate.Host.ProxyAddress, gate.Time.GetUtcNow()) == early.Thumbprint),
            "The certificate was not applied once valid.");
    }

    [Fact]
    public async Task A_certificate_that_cannot_serve_stops_the_start_with_the_reason()
    {
        var policyPath = Path.Combine(_directory, "policy.yaml");
        await File.WriteAllTextAsync(policyPath, "upstream: http://127.0.0.1:9\n");

        using var expired = _authority.IssueServer(DateTimeOffset.UtcNow.AddDays(-10), DateTimeOffset.UtcNow.AddDays(-1));
        WritePem(expired, CertificatePath, KeyPath);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(policyPath, CertificatePath, KeyPath));
        Assert.Contains("not now", error.Message, StringComparison.Ordinal);

        using var other = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var valid = _authority.IssueServer(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        WritePem(valid, CertificatePath, keyPath: null);
        var otherKey = Path.Combine(_directory, "other.key");
        await File.WriteAllTextAsync(otherKey, other.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(policyPath, Path.Combine(_directory, "tls.crt"), otherKey));
        Assert.Contains("matching PEM private key", error.Message, StringComparison.Ordinal);

        error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(policyPath, Path.Combine(_directory, "missing.crt"), null));
        Assert.Contains("cannot be read", error.Message, StringComparison.Ordinal);

        using var client = _authority.IssueClient();
        WritePem(client, CertificatePath, keyPath: null);
        error = await Assert.ThrowsAsync<InvalidOperationException>(() => StartAsync(policyPath, CertificatePath, null));
        Assert.Contains("not for server authentication", error.Message, StringComparison.Ordinal);

        // Options that cannot go together are refused before anything starts.
        Assert.Throws<ArgumentException>(() => new GatewayHostOptions { PolicyPath = policyPath, Listen = new Uri("https://127.0.0.1:0") }.Validate());
        Assert.Throws<ArgumentException>(() => new GatewayHostOptions { PolicyPath = policyPath, Certificate = CertificatePath }.Validate());
    }

    [Fact]
    public void The_command_line_names_the_missing_certificate()
    {
        var policyPath = Path.Combine(_directory, "policy.yaml");
        File.WriteAllText(policyPath, "upstream: http://127.0.0.1:9\n");
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = Floodgate.Gateway.Cli.GatewayCli.Build(output, errors)
            .Parse(["run", "--policy", policyPath, "--listen", "https://127.0.0.1:0", "--admin", "http://127.0.0.1:0"]).Invoke();
        Assert.Equal(1, code);
        Assert.Contains("--certificate", errors.ToString(), StringComparison.Ordinal);
    }

    private static Task<GatewayHost> StartAsync(string policyPath, string certificate, string? key) => GatewayHost.StartAsync(new GatewayHostOptions
    {
        PolicyPath = policyPath,
        Listen = new Uri("https://127.0.0.1:0"),
        Certificate = certificate,
        CertificateKey = key,
        Admin = null,
        TimeProvider = new FakeTimeProvider(DateTimeOffset.UtcNow),
        WatchPolicy = false,
        LogLevel = LogLevel.None,
    });

    private static HttpRequestMessage Request(string path, Version version) =>
        new(HttpMethod.Get, new Uri(path, UriKind.Relative)) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };

    /// <summary>A client that trusts only the test root and records the certificate each new connection is served.</summary>
    private HttpClient TrustingClient(Uri address, out Func<string?> served, DateTimeOffset? at = null)
    {
        string? thumbprint = null;
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                CertificateChainPolicy = _authority.ChainPolicy(at),
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    thumbprint = certificate?.GetCertHashString();
                    return errors == SslPolicyErrors.None;
                },
            },
        };
        served = () => thumbprint;
        return new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>The certificate the listener serves, checked as valid at <paramref name="at"/> (now when not given).</summary>
    private async Task<string?> ServedThumbprintAsync(Uri address, DateTimeOffset? at = null)
    {
        using var client = TrustingClient(address, out var served, at);
        using var response = await client.SendAsync(Request("/thumbprint", HttpVersion.Version20));
        return served();
    }

    private static async Task<double> ReloadsAsync(TestGateway gate, string result)
    {
        var metrics = await gate.Admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        var line = metrics.Split('\n').FirstOrDefault(l =>
            l.StartsWith("floodgate_tls_certificate_reloads_total{", StringComparison.Ordinal) && l.Contains($"result=\"{result}\"", StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static Task<bool> EventuallyAsync(Func<Task<bool>> condition) => Eventually.HoldsAsync(condition, TimeSpan.FromSeconds(15));

    private void WritePem(X509Certificate2 leaf, string certificatePath, string? keyPath)
    {
        var key = leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem();
        var chain = leaf.ExportCertificatePem() + "\n" + _authority.Intermediate.ExportCertificatePem() + "\n";
        if (keyPath is null)
        {
            File.WriteAllText(certificatePath, chain + key + "\n");
            return;
        }

        File.WriteAllText(keyPath, key + "\n");
        File.WriteAllText(certificatePath, chain);
    }

    /// <summary>A root, an intermediate it signed, and server or client certificates the intermediate issues.</summary>
    private sealed class TestAuthority : IDisposable
    {
        private readonly X509Certificate2 _root;
        private long _serial;

        public TestAuthority()
        {
            var from = DateTimeOffset.UtcNow.AddDays(-30);
            var to = DateTimeOffset.UtcNow.AddYears(1);
            using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var root = new CertificateRequest("CN=Floodgate Test Root", rootKey, HashAlgorithmName.SHA256);
            AddAuthorityExtensions(root);
            _root = root.CreateSelfSigned(from, to);

            using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var intermediate = new CertificateRequest("CN=Floodgate Test Intermediate", intermediateKey, HashAlgorithmName.SHA256);
            AddAuthorityExtensions(intermediate);
            intermediate.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_root, includeKeyIdentifier: true, includeIssuerAndSerial: false));
            using var signed = intermediate.Create(_root, from, to, NextSerial());
            Intermediate = signed.CopyWithPrivateKey(intermediateKey);
        }

        public X509Certificate2 Intermediate { get; }

        public X509ChainPolicy ChainPolicy(DateTimeOffset? at = null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
                DisableCertificateDownloads = true,
            };
            if (at is { } time)
            {
                policy.VerificationTime = time.LocalDateTime;
            }

            policy.CustomTrustStore.Add(_root);
            return policy;
        }

        public X509Certificate2 IssueServer(DateTimeOffset from, DateTimeOffset to) => Issue(from, to, "1.3.6.1.5.5.7.3.1");

        public X509Certificate2 IssueClient() => Issue(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), "1.3.6.1.5.5.7.3.2");

        public void Dispose()
        {
            _root.Dispose();
            Intermediate.Dispose();
        }

        private X509Certificate2 Issue(DateTimeOffset from, DateTimeOffset to, string usage)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
            var names = new SubjectAlternativeNameBuilder();
            names.AddIpAddress(IPAddress.Loopback);
            names.AddDnsName("localhost");
            request.CertificateExtensions.Add(names.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Intermediate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
            using var signed = request.Create(Intermediate, from, to, NextSerial());
            return signed.CopyWithPrivateKey(key);
        }

        private byte[] NextSerial() => BitConverter.GetBytes(Interlocked.Increment(ref _serial) + 1000);

        private static void AddAuthorityExtensions(CertificateRequest request)
        {
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        }
    }
}
