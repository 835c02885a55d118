using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// TLS beyond what the configuration string can say: servers whose certificates a private certificate authority
/// signed, and a client certificate for servers that require one (mutual TLS).
/// </summary>
internal static class RedisTls
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1", "Server Authentication");

    /// <summary>Applies <paramref name="options"/>' TLS files to <paramref name="configuration"/>; either file turns TLS on.</summary>
    /// <exception cref="ArgumentException">A file is missing, unreadable or not what it should be.</exception>
    public static void Apply(ConfigurationOptions configuration, RedisStoreOptions options)
    {
        if (options.TrustedCertificateAuthority is { } authorityFile)
        {
            var authorities = LoadAuthorities(authorityFile);
            configuration.Ssl = true;
            configuration.CertificateValidation += (_, certificate, chain, errors) => IsTrusted(authorities, certificate, chain, errors);
        }

        if (options.ClientCertificate is { } certificateFile)
        {
            var client = LoadClientCertificate(certificateFile, options.ClientCertificateKey);
            configuration.Ssl = true;
            configuration.CertificateSelection += (_, _, _, _, _) => client;
        }
    }

    /// <summary>The certificates of a PEM file of one or more certificate authorities.</summary>
    /// <exception cref="ArgumentException">The file is missing, unreadable or holds no PEM certificate.</exception>
    public static X509Certificate2Collection LoadAuthorities(string path)
    {
        const string Name = nameof(RedisStoreOptions.TrustedCertificateAuthority);
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new ArgumentException($"The trusted certificate authority file ({Name}) must be a path to a PEM file.", Name);
        }

        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or NotSupportedException)
        {
            throw new ArgumentException($"The trusted certificate authority file ({Name}) '{path}' cannot be read: {e.Message}", Name, e);
        }

        if (authorities.Count == 0)
        {
            throw new ArgumentException($"The trusted certificate authority file ({Name}) '{path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----).", Name);
        }

        return authorities;
    }

    /// <summary>A client certificate with its private key, from PEM files.</summary>
    /// <param name="certificatePath">The certificate's PEM file.</param>
    /// <param name="keyPath">The private key's PEM file; when <see langword="null"/>, the key is read from <paramref name="certificatePath"/>.</param>
    /// <exception cref="ArgumentException">A file is missing or unreadable, or the key is missing or does not match.</exception>
    public static X509Certificate2 LoadClientCertificate(string certificatePath, string? keyPath)
    {
        const string Name = nameof(RedisStoreOptions.ClientCertificate);
        if (string.IsNullOrWhiteSpace(certificatePath) || (keyPath is not null && string.IsNullOrWhiteSpace(keyPath)))
        {
            throw new ArgumentException($"The client certificate ({Name}) and its key ({nameof(RedisStoreOptions.ClientCertificateKey)}) must be paths to PEM files.", Name);
        }

        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            if (!pem.HasPrivateKey)
            {
                throw new CryptographicException("the certificate has no private key.");
            }

            // A key read from PEM is ephemeral, which some TLS stacks refuse for client authentication; a PKCS#12
            // round trip gives it the usual form.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or NotSupportedException)
        {
            var files = keyPath is null ? $"'{certificatePath}'" : $"'{certificatePath}' with the key '{keyPath}'";
            throw new ArgumentException($"The client certificate ({Name}) {files} cannot be used: {e.Message}", Name, e);
        }
    }

    /// <summary>
    /// Whether a server's certificate is trusted: it names the host (no error but chain errors from the platform) and
    /// chains, for server authentication, to one of <paramref name="authorities"/>, and to nothing else: the machine's
    /// trust store is not consulted. Revocation is not checked (private authorities rarely publish revocation lists).
    /// </summary>
    internal static bool IsTrusted(X509Certificate2Collection authorities, X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors)
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
