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
                    errors.Add($"{Prefix}{nameof(options.JsonWebKeySet)}: contains a symmetric key; give a shared secret as {nameof(options.SymmetricSecret)}.");
                else if (!publicOnly)
                    errors.Add($"{Prefix}{nameof(options.JsonWebKeySet)}: contains a private key; publish public keys only.");
                else if (signing.Count == 0)
                    errors.Add($"{Prefix}{nameof(options.JsonWebKeySet)}: contains no usable signing key.");
                else
                    keys.AddRange(signing);
            }
            catch (Exception ex) when (ex is ArgumentException or JsonException or FormatException)
            {
                errors.Add($"{Prefix}{nameof(options.JsonWebKeySet)}: not a JSON Web Key Set ({ex.GetType().Name}).");
            }
        }

        for (var i = 0; i < options.PublicKeysPem.Count; i++)
        {
            var field = $"{Prefix}{nameof(options.PublicKeysPem)}[{i}]";
            var pem = options.PublicKeysPem[i];
            if (string.IsNullOrWhiteSpace(pem) || !PemEncoding.TryFind(pem, out var fields))
            {
                errors.Add($"{field}: not a PEM document.");
                continue;
            }

            var label = pem.AsSpan()[fields.Label].ToString();
            try
            {
                switch (label)
                {
                    case "CERTIFICATE":
                        keys.Add(new X509SecurityKey(X509Certificate2.CreateFromPem(pem)));
                        break;
                    case "RSA PUBLIC KEY":
                        keys.Add(ImportRsa(pem));
                        break;
                    case "PUBLIC KEY":
                        keys.Add(ImportPublicKey(pem));
                        break;
                    default:
                        errors.Add(label.Contains("PRIVATE", StringComparison.Ordinal)
                            ? $"{field}: is a private key; give the public key."
                            : $"{field}: '{label}' is not a public key or certificate.");
                        break;
                }
            }
            catch (CryptographicException)
            {
                errors.Add($"{field}: not a valid RSA or EC public key.");
            }
        }

        if (options.SymmetricSecret is { Length: > 0 } secret)
            keys.Add(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)));

        return keys;
    }

    /// <summary>
    /// Whether <paramref name="key"/> is a shared-secret key. HMAC keys come only from
    /// <see cref="JwtIdentityOptions.SymmetricSecret"/>, never from a key set.
    /// </summary>
    public static bool IsSymmetric(SecurityKey key) =>
        key is SymmetricSecurityKey || (key is JsonWebKey jwk && string.Equals(jwk.Kty, JsonWebAlgorithmsKeyTypes.Octet, StringComparison.Ordinal));

    private static RsaSecurityKey ImportRsa(string pem)
    {
        var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        return new RsaSecurityKey(rsa);
    }

    private static SecurityKey ImportPublicKey(string pem)
    {
        try
        {
            return ImportRsa(pem);
        }
        catch (CryptographicException)
        {
            var ec = ECDsa.Create();
            ec.ImportFromPem(pem);
            return new ECDsaSecurityKey(ec);
        }
    }
}
