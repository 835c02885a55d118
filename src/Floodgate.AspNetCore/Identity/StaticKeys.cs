using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

/// <summary>Loads the static keys of <see cref="JwtIdentityOptions"/>.</summary>
internal static class StaticKeys
{
    /// <summary>Loads the static asymmetric keys and the symmetric secret, adding a message naming the field per problem.</summary>
    public static List<SecurityKey> Load(JwtIdentityOptions options, List<string> errors)
    {
        const string Prefix = nameof(JwtIdentityOptions) + ".";
        var keys = new List<SecurityKey>();

        if (options.JsonWebKeySet is { } jwks)
            LoadJsonWebKeySet(jwks, $"{Prefix}{nameof(options.JsonWebKeySet)}", keys, errors);

        for (var i = 0; i < options.PublicKeysPem.Count; i++)
            LoadPem(options.PublicKeysPem[i], $"{Prefix}{nameof(options.PublicKeysPem)}[{i}]", keys, errors);

        if (options.SymmetricSecret is { Length: > 0 } secret)
            keys.Add(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)));

        return keys;
    }

    /// <summary>
    /// Loads the public signing keys of a JSON Web Key Set document into <paramref name="keys"/>; each problem is added to
    /// <paramref name="errors"/> as a message starting with <paramref name="source"/>, such as a field or a file name.
    /// </summary>
    public static void LoadJsonWebKeySet(string jwks, string source, List<SecurityKey> keys, List<string> errors)
    {
        try
        {
            var set = new JsonWebKeySet(jwks);
            var signing = set.GetSigningKeys();
            var symmetric = false;
            var publicOnly = true;
            foreach (var key in set.Keys)
            {
                if (IsSymmetric(key))
                    symmetric = true;
                else if (key.HasPrivateKey)
                    publicOnly = false;
            }

            if (symmetric)
                errors.Add($"{source}: contains a symmetric key; give a shared secret as {nameof(JwtIdentityOptions.SymmetricSecret)}.");
            else if (!publicOnly)
                errors.Add($"{source}: contains a private key; publish public keys only.");
            else if (signing.Count == 0)
                errors.Add($"{source}: contains no usable signing key.");
            else
                keys.AddRange(signing);
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException or FormatException)
        {
            errors.Add($"{source}: not a JSON Web Key Set ({ex.GetType().Name}).");
        }
    }

    /// <summary>
    /// Loads the key of every block of a PEM text into <paramref name="keys"/>: public keys (<c>PUBLIC KEY</c>,
    /// <c>RSA PUBLIC KEY</c>) and certificates (their public key; a bundle gives one key per certificate). Text around
    /// the blocks is ignored. Each problem is added to <paramref name="errors"/> as a message starting with
    /// <paramref name="source"/>, such as a field or a file name, and the block's number when the text holds several.
    /// </summary>
    /// <remarks>
    /// The keys carry no <c>kid</c>, certificates' included (not their thumbprint), so they are tried for a token of any
    /// <c>kid</c>. A certificate's dates and chain are not checked: it is only a container for the key.
    /// </remarks>
    public static void LoadPem(string pem, string source, List<SecurityKey> keys, List<string> errors)
    {
        var blocks = new List<(string Label, byte[] Data)>();
        var rest = pem.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            var data = new byte[fields.DecodedDataLength];
            if (!Convert.TryFromBase64Chars(rest[fields.Base64Data], data, out var written) || written != data.Length)
                break;
            blocks.Add((rest[fields.Label].ToString(), data));
            rest = rest[fields.Location.End.GetOffset(rest.Length)..];
        }

        if (blocks.Count == 0)
        {
            errors.Add($"{source}: not a PEM document.");
            return;
        }

        for (var i = 0; i < blocks.Count; i++)
        {
            var (label, data) = blocks[i];
            var where = blocks.Count == 1 ? source : $"{source} (PEM block {i + 1})";
            try
            {
                switch (label)
                {
                    case "CERTIFICATE":
                        keys.Add(CertificateKey(data) ?? throw new CryptographicException("The certificate's key is neither RSA nor EC."));
                        break;
                    case "RSA PUBLIC KEY":
                        keys.Add(ImportRsaPublicKey(data));
                        break;
                    case "PUBLIC KEY":
                        keys.Add(ImportPublicKey(data));
                        break;
                    default:
                        errors.Add(label.Contains("PRIVATE", StringComparison.Ordinal)
                            ? $"{where}: is a private key; give the public key."
                            : $"{where}: '{label}' is not a public key or certificate.");
                        break;
                }
            }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException)
            {
                errors.Add(label == "CERTIFICATE"
                    ? $"{where}: not a valid certificate with an RSA or EC public key."
                    : $"{where}: not a valid RSA or EC public key.");
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="key"/> is a shared-secret key. HMAC keys come only from
    /// <see cref="JwtIdentityOptions.SymmetricSecret"/>, never from a key set.
    /// </summary>
    public static bool IsSymmetric(SecurityKey key) =>
        key is SymmetricSecurityKey || (key is JsonWebKey jwk && string.Equals(jwk.Kty, JsonWebAlgorithmsKeyTypes.Octet, StringComparison.Ordinal));

    private static SecurityKey? CertificateKey(byte[] data)
    {
        using var certificate = X509CertificateLoader.LoadCertificate(data);
        if (certificate.GetRSAPublicKey() is { } rsa)
            return new RsaSecurityKey(rsa);
        if (certificate.GetECDsaPublicKey() is { } ec)
            return new ECDsaSecurityKey(ec);
        return null;
    }

    private static RsaSecurityKey ImportRsaPublicKey(byte[] data)
    {
        var rsa = RSA.Create();
        try
        {
            rsa.ImportRSAPublicKey(data, out var read);
            if (read != data.Length)
                throw new CryptographicException("Trailing data after the key.");
            return new RsaSecurityKey(rsa);
        }
        catch
        {
            rsa.Dispose();
            throw;
        }
    }

    /// <summary>A SubjectPublicKeyInfo: an RSA key, or else an EC key.</summary>
    private static SecurityKey ImportPublicKey(byte[] data)
    {
        var rsa = RSA.Create();
        try
        {
            rsa.ImportSubjectPublicKeyInfo(data, out var read);
            if (read == data.Length)
                return new RsaSecurityKey(rsa);
        }
        catch (CryptographicException)
        {
        }

        rsa.Dispose();
        var ec = ECDsa.Create();
        try
        {
            ec.ImportSubjectPublicKeyInfo(data, out var read);
            if (read != data.Length)
                throw new CryptographicException("Trailing data after the key.");
            return new ECDsaSecurityKey(ec);
        }
        catch
        {
            ec.Dispose();
            throw;
        }
    }
}
