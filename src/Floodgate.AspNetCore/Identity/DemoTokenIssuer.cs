using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Mints signed JWTs with a local key, <b>for demos and tests only</b>: the gateway's <c>--demo</c> mode and
/// <c>floodgate token</c> command. It is not an identity provider: it authenticates nobody and signs whatever it is
/// asked to. Production tokens come from a real identity provider.
/// </summary>
/// <remarks>
/// Configure a resolver to trust it with <see cref="PublicJsonWebKeySet"/> (as <see cref="JwtIdentityOptions.JsonWebKeySet"/>),
/// <see cref="Issuer"/> and <see cref="Audience"/>. Keep the key across processes with <see cref="ExportPrivateKeyPem"/> and
/// <see cref="FromPem"/>.
/// </remarks>
public sealed class DemoTokenIssuer : IDisposable
{
    private readonly AsymmetricAlgorithm _key;
    private readonly SigningCredentials _credentials;
    private readonly TimeProvider _time;
    private readonly JsonWebTokenHandler _handler = new();

    private DemoTokenIssuer(AsymmetricAlgorithm key, string issuer, string audience, string keyId, TimeProvider? timeProvider)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(issuer);
        ArgumentException.ThrowIfNullOrWhiteSpace(audience);
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        _key = key;
        Issuer = issuer;
        Audience = audience;
        KeyId = keyId;
        _time = timeProvider ?? TimeProvider.System;
        (SecurityKey securityKey, string algorithm) = key switch
        {
            ECDsa ec => ((SecurityKey)new ECDsaSecurityKey(ec) { KeyId = keyId }, SecurityAlgorithms.EcdsaSha256),
            RSA rsa => ((SecurityKey)new RsaSecurityKey(rsa) { KeyId = keyId }, SecurityAlgorithms.RsaSha256),
            _ => throw new ArgumentException("The key must be an EC P-256 or RSA key.", nameof(key)),
        };
        _credentials = new SigningCredentials(securityKey, algorithm);
        PublicJsonWebKeySet = BuildJwks(key, keyId, algorithm);
    }

    /// <summary>The <c>iss</c> of every token.</summary>
    public string Issuer { get; }

    /// <summary>The <c>aud</c> of every token.</summary>
    public string Audience { get; }

    /// <summary>The <c>kid</c> of the signing key.</summary>
    public string KeyId { get; }

    /// <summary>A JSON Web Key Set with the public key only, for <see cref="JwtIdentityOptions.JsonWebKeySet"/>.</summary>
    public string PublicJsonWebKeySet { get; }

    /// <summary>Creates an issuer with a new EC P-256 key (ES256).</summary>
    public static DemoTokenIssuer CreateEcdsa(string issuer, string audience, string keyId = "floodgate-demo", TimeProvider? timeProvider = null) =>
        new(ECDsa.Create(ECCurve.NamedCurves.nistP256), issuer, audience, keyId, timeProvider);

    /// <summary>Creates an issuer from a PEM private key: EC P-256 (ES256) or RSA of at least 2048 bits (RS256).</summary>
    /// <exception cref="ArgumentException">The PEM holds no such private key.</exception>
    public static DemoTokenIssuer FromPem(string privateKeyPem, string issuer, string audience, string keyId = "floodgate-demo", TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(privateKeyPem);
        var ec = ECDsa.Create();
        try
        {
            ec.ImportFromPem(privateKeyPem);
            ec.ExportParameters(includePrivateParameters: true);
            if (ec.KeySize == 256)
                return new DemoTokenIssuer(ec, issuer, audience, keyId, timeProvider);
            ec.Dispose();
            throw new ArgumentException("The EC key must be on P-256.", nameof(privateKeyPem));
        }
        catch (CryptographicException)
        {
            ec.Dispose();
        }

        var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(privateKeyPem);
            rsa.ExportParameters(includePrivateParameters: true);
        }
        catch (CryptographicException ex)
        {
            rsa.Dispose();
            throw new ArgumentException("Not a PEM EC P-256 or RSA private key.", nameof(privateKeyPem), ex);
        }

        if (rsa.KeySize < 2048)
        {
            rsa.Dispose();
            throw new ArgumentException("The RSA key must have at least 2048 bits.", nameof(privateKeyPem));
        }

        return new DemoTokenIssuer(rsa, issuer, audience, keyId, timeProvider);
    }

    /// <summary>The private key in PKCS#8 PEM, to reload it with <see cref="FromPem"/>. Keep it secret.</summary>
    public string ExportPrivateKeyPem() => _key.ExportPkcs8PrivateKeyPem();

    /// <summary>Mints a token.</summary>
    /// <param name="subject">The <c>sub</c> claim.</param>
    /// <param name="plan">The <c>plan</c> claim; omitted when <see langword="null"/>.</param>
    /// <param name="lifetime">How long the token is valid; one hour by default.</param>
    /// <param name="claims">More claims; they override the defaults.</param>
    /// <returns>The compact JWT.</returns>
    public string Issue(string subject, string? plan = null, TimeSpan? lifetime = null, IReadOnlyDictionary<string, object>? claims = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subject);
        var valid = lifetime ?? TimeSpan.FromHours(1);
        if (valid <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(lifetime), valid, "The lifetime must be positive.");
        var now = _time.GetUtcNow().UtcDateTime;
        var all = new Dictionary<string, object>(StringComparer.Ordinal) { ["sub"] = subject };
        if (plan is not null)
            all["plan"] = plan;
        if (claims is not null)
        {
            foreach (var (name, value) in claims)
                all[name] = value;
        }

        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + valid,
            Claims = all,
            SigningCredentials = _credentials,
        });
    }

    /// <summary>Disposes the key.</summary>
    public void Dispose() => _key.Dispose();

    private static string BuildJwks(AsymmetricAlgorithm key, string keyId, string algorithm)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteStartArray("keys");
            json.WriteStartObject();
            json.WriteString("kid", keyId);
            json.WriteString("use", "sig");
            json.WriteString("alg", algorithm);
            if (key is ECDsa ec)
            {
                var p = ec.ExportParameters(includePrivateParameters: false);
                json.WriteString("kty", "EC");
                json.WriteString("crv", "P-256");
                json.WriteString("x", Base64UrlEncoder.Encode(p.Q.X));
                json.WriteString("y", Base64UrlEncoder.Encode(p.Q.Y));
            }
            else
            {
                var p = ((RSA)key).ExportParameters(includePrivateParameters: false);
                json.WriteString("kty", "RSA");
                json.WriteString("n", Base64UrlEncoder.Encode(p.Modulus));
                json.WriteString("e", Base64UrlEncoder.Encode(p.Exponent));
            }

            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
