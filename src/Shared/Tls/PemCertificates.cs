using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Floodgate.Tls;

/// <summary>
/// Certificates read from PEM files, and trust in a private certificate authority alone: the Redis store's TLS and the
/// gateway's upstream TLS read and check them alike.
/// </summary>
internal static class PemCertificates
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1", "Server Authentication");

    /// <summary>
    /// Reads a PEM file of certificate authorities; <see langword="null"/>, with what is wrong with the file in
    /// <paramref name="problem"/> (worded to follow its name), when it cannot be used.
    /// </summary>
    public static X509Certificate2Collection? ReadAuthorities(string path, out string? problem)
    {
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or NotSupportedException)
        {
            problem = $"cannot be read: {e.Message}";
            return null;
        }

        problem = authorities.Count == 0 ? "holds no PEM certificate (-----BEGIN CERTIFICATE-----)." : null;
        return problem is null ? authorities : null;
    }

    /// <summary>
    /// Reads a client certificate and its key from PEM files; <see langword="null"/>, with what is wrong in
    /// <paramref name="problem"/> (worded to follow the files' names), when they cannot be used.
    /// </summary>
    public static X509Certificate2? ReadClientCertificate(string certificatePath, string? keyPath, out string? problem)
    {
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            if (!pem.HasPrivateKey)
            {
                throw new CryptographicException("the certificate has no private key.");
            }

            // A key read from PEM is ephemeral, which some TLS stacks refuse for client authentication; a PKCS#12
            // round trip gives it the usual form.
            problem = null;
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or NotSupportedException)
        {
            problem = $"cannot be used: {e.Message}";
            return null;
        }
    }

    /// <summary>
    /// Whether a server's certificate is trusted: it names the host (no error but chain errors from the platform) and
    /// chains, for server authentication, to one of <paramref name="authorities"/>, and to nothing else: the machine's
    /// trust store is not consulted. Revocation is not checked (private authorities rarely publish revocation lists).
    /// </summary>
    public static bool IsTrusted(X509Certificate2Collection authorities, X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            // No certificate, or one for another name.
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;

        // Only what the server sent and the given CAs: no download of missing intermediates, which could stall a handshake.
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.ApplicationPolicy.Add(ServerAuthentication);
        if (presented is not null)
        {
            // The intermediates the server sent.
            chain.ChainPolicy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
        }

        using var copy = certificate is X509Certificate2 ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        try
        {
            return chain.Build(copy ?? (X509Certificate2)certificate);
        }
        finally
        {
            foreach (var element in chain.ChainElements)
            {
                element.Certificate.Dispose();
            }
        }
    }
}
