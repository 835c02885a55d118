using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Floodgate.Testing;

/// <summary>
/// A private certificate authority made for one test, with a server certificate for 127.0.0.1 and a client
/// certificate, written as PEM files into a temporary directory that is deleted on dispose.
/// </summary>
public sealed class TestCertificates : IDisposable
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private TestCertificates(string directory) => Directory = directory;

    public string Directory { get; }

    /// <summary>The CA's certificate (PEM).</summary>
    public string Authority => Path.Combine(Directory, "ca.pem");

    /// <summary>The server's certificate (PEM) for IP 127.0.0.1 and localhost, signed by the CA.</summary>
    public string ServerCertificate => Path.Combine(Directory, "server.pem");

    /// <summary>The server's private key (PKCS#8 PEM).</summary>
    public string ServerKey => Path.Combine(Directory, "server.key");

    /// <summary>A client certificate (PEM) for mutual TLS, signed by the CA.</summary>
    public string ClientCertificate => Path.Combine(Directory, "client.pem");

    /// <summary>The client's private key (PKCS#8 PEM).</summary>
    public string ClientKey => Path.Combine(Directory, "client.key");

    /// <summary>Creates a CA named <paramref name="name"/> and its certificates.</summary>
    public static TestCertificates Create(string name = "Floodgate Test CA")
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("floodgate-tls-").FullName;
        try
        {
            var now = DateTimeOffset.UtcNow;
            using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var caRequest = new CertificateRequest($"CN={name}", caKey, HashAlgorithmName.SHA256);
            caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
            caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
            using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
            File.WriteAllText(Path.Combine(directory, "ca.pem"), ca.ExportCertificatePem());

            Issue(ca, "CN=127.0.0.1", ServerAuthentication, Path.Combine(directory, "server.pem"), Path.Combine(directory, "server.key"), now, 1);
            Issue(ca, "CN=floodgate", ClientAuthentication, Path.Combine(directory, "client.pem"), Path.Combine(directory, "client.key"), now, 2);
            return new TestCertificates(directory);
        }
        catch
        {
            System.IO.Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static void Issue(X509Certificate2 ca, string subject, Oid usage, string certificateFile, string keyFile, DateTimeOffset now, byte serial)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.Create(ca, now.AddMinutes(-5), now.AddDays(1), [serial]);
        File.WriteAllText(certificateFile, certificate.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
    }
}
