using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.Gateway.Demo;

/// <summary>
/// The demo's signing key: an RSA key kept in <c>~/.floodgate/demo-signing-key.pem</c> (or <c>$FLOODGATE_DEMO_KEY</c>),
/// created on first use. <c>floodgate run --demo</c> publishes its public half as a JWKS; <c>floodgate token</c> signs
/// with it. For trying Floodgate only: the key never leaves the machine, and no production policy should trust it.
/// </summary>
public sealed class DemoKey : IDisposable
{
    /// <summary>The issuer of demo tokens.</summary>
    public const string Issuer = "floodgate-demo";

    /// <summary>The audience of demo tokens.</summary>
    public const string Audience = "floodgate-demo";

    /// <summary>The path on the admin port where the demo publishes its JWKS.</summary>
    public const string JwksPath = "/demo/jwks.json";

    private readonly RSA _rsa;

    private DemoKey(RSA rsa, string path)
    {
        _rsa = rsa;
        Path = path;
        var publicKey = rsa.ExportSubjectPublicKeyInfo();
        KeyId = "demo-" + Convert.ToHexStringLower(SHA256.HashData(publicKey))[..16];
    }

    /// <summary>Where the key is kept.</summary>
    public string Path { get; }

    /// <summary>The key's <c>kid</c>.</summary>
    public string KeyId { get; }

    /// <summary>The default location: <c>$FLOODGATE_DEMO_KEY</c>, else <c>~/.floodgate/demo-signing-key.pem</c>.</summary>
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable("FLOODGATE_DEMO_KEY") is { Length: > 0 } path
            ? path
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".floodgate", "demo-signing-key.pem");

    /// <summary>Loads the key at <paramref name="path"/>, creating it first when it does not exist.</summary>
    /// <exception cref="InvalidOperationException">The file exists but holds no RSA private key.</exception>
    public static DemoKey LoadOrCreate(string? path = null)
    {
        path ??= DefaultPath;
        var rsa = RSA.Create();
        try
        {
            if (File.Exists(path))
            {
                try
                {
                    rsa.ImportFromPem(File.ReadAllText(path));
                }
                catch (ArgumentException e)
                {
                    throw new InvalidOperationException($"The demo key file '{path}' holds no RSA private key in PEM; delete it to create a new one.", e);
                }
            }
            else
            {
                rsa.KeySize = 2048;
                var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
                Directory.CreateDirectory(directory);
                var temporary = path + ".tmp";
                File.WriteAllText(temporary, rsa.ExportRSAPrivateKeyPem());
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                File.Move(temporary, path, overwrite: true);
            }

            return new DemoKey(rsa, path);
        }
        catch
        {
            rsa.Dispose();
            throw;
        }
    }

    /// <summary>The public key as a JWKS document.</summary>
    public string JwksJson()
    {
        var parameters = _rsa.ExportParameters(false);
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteStartArray("keys");
            json.WriteStartObject();
            json.WriteString("kty", "RSA");
            json.WriteString("use", "sig");
            json.WriteString("alg", "RS256");
            json.WriteString("kid", KeyId);
            json.WriteString("n", Base64UrlEncoder.Encode(parameters.Modulus));
            json.WriteString("e", Base64UrlEncoder.Encode(parameters.Exponent));
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Mints a token for <paramref name="subject"/> on <paramref name="plan"/>, valid for <paramref name="lifetime"/>.</summary>
    public string CreateToken(string subject, string? plan, TimeSpan lifetime, string issuer = Issuer, string audience = Audience)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subject);
        var claims = new Dictionary<string, object> { ["sub"] = subject };
        if (!string.IsNullOrEmpty(plan))
        {
            claims["plan"] = plan;
        }

        var now = DateTime.UtcNow;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + lifetime,
            SigningCredentials = new SigningCredentials(new RsaSecurityKey(_rsa) { KeyId = KeyId }, SecurityAlgorithms.RsaSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    /// <summary>Releases the key.</summary>
    public void Dispose() => _rsa.Dispose();
}
