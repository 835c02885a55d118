using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Floodgate.Gateway.Admin.Auth;

/// <summary>
/// The client certificates the admin port admits (policy <c>admin.client_certificates</c>): those that chain to one of
/// the given certificate authorities, or whose SHA-256 thumbprint is listed. When set, an admin request needs such a
/// certificate as well as an admin token. Immutable: a policy reload brings a new one.
/// </summary>
internal sealed class AdminClientCertificates
{
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2", "Client Authentication");

    private readonly X509Certificate2Collection? _authorities;
    private readonly byte[][] _thumbprints;

    /// <summary>Admits certificates chaining to <paramref name="authorities"/> or with one of <paramref name="thumbprints"/> (SHA-256).</summary>
    public AdminClientCertificates(X509Certificate2Collection? authorities, IReadOnlyList<byte[]> thumbprints)
    {
        ArgumentNullException.ThrowIfNull(thumbprints);
        if ((authorities is null || authorities.Count == 0) && thumbprints.Count == 0)
        {
            throw new ArgumentException("Client certificates need a certificate authority or a thumbprint to admit.", nameof(thumbprints));
        }

        _authorities = authorities;
        _thumbprints = [.. thumbprints];
    }

    /// <summary>How many thumbprints are pinned.</summary>
    public int Thumbprints => _thumbprints.Length;

    /// <summary>Whether a certificate authority is given.</summary>
    public bool HasAuthorities => _authorities is { Count: > 0 };

    /// <summary>
    /// Why <paramref name="certificate"/> is refused; <see langword="null"/> when it is admitted. A listed thumbprint
    /// admits a certificate as it is (pinned); otherwise it must chain to a given authority, for client authentication,
    /// and be valid now. The machine's trust store is not consulted and revocation is not checked.
    /// </summary>
    public string? Refusal(X509Certificate2? certificate)
    {
        if (certificate is null)
        {
            return "no client certificate";
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        certificate.TryGetCertHash(HashAlgorithmName.SHA256, hash, out _);
        var pinned = false;
        foreach (var thumbprint in _thumbprints)
        {
            // Every thumbprint is compared, in constant time.
            pinned |= CryptographicOperations.FixedTimeEquals(hash, thumbprint);
        }

        if (pinned)
        {
            return null;
        }

        return _authorities is { Count: > 0 } authorities && Chains(authorities, certificate) ? null : "client certificate not trusted";
    }

    private static bool Chains(X509Certificate2Collection authorities, X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;

        // No download of missing intermediates, which could stall a request.
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuthentication);
        try
        {
            return chain.Build(certificate);
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
