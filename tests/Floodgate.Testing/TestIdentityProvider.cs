using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.Testing;

/// <summary>
/// A real OpenID Connect identity provider for tests: Kestrel on 127.0.0.1 (a free port) serving
/// <c>/.well-known/openid-configuration</c> and a JWKS at <c>/jwks</c> with real RSA and EC keys, and minting tokens
/// signed with them. It counts discovery and JWKS requests and supports key rotation (publishing a new <c>kid</c>).
/// </summary>
/// <remarks>
/// Starts with two published keys: <see cref="RsaKeyId"/> (RS256, 2048 bits) and <see cref="EcKeyId"/> (ES256, P-256).
/// Dispose it to stop the server.
/// </remarks>
public sealed class TestIdentityProvider : IAsyncDisposable
{
    /// <summary>The kid of the initial RSA key.</summary>
    public const string RsaKeyId = "rsa-1";

    /// <summary>The kid of the initial EC key.</summary>
    public const string EcKeyId = "ec-1";

    /// <summary>The audience tokens carry by default.</summary>
    public const string DefaultAudience = "api";

    // RSA key generation costs tens to hundreds of milliseconds; tests share a pool of keys, generated once.
    private static readonly Lazy<RSA>[] RsaPool = [.. Enumerable.Range(0, 64).Select(_ => new Lazy<RSA>(() => RSA.Create(2048)))];

    private readonly WebApplication _app;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (SecurityKey Key, string Algorithm)> _keys = new(StringComparer.Ordinal);
    private readonly List<string> _published = [];
    private readonly JsonWebTokenHandler _handler = new();
    private int _discoveryRequests;
    private int _jwksRequests;
    private int _rotations;
    private int _rsaKeys;

    private TestIdentityProvider(WebApplication app, string authority)
    {
        _app = app;
        Authority = authority;
        AddRsaKey(RsaKeyId);
        AddEcKey(EcKeyId);
    }

    /// <summary>The issuer URL, <c>http://127.0.0.1:port</c>; discovery lives under it.</summary>
    public string Authority { get; }

    /// <summary>The issuer (<c>iss</c>) of the tokens, equal to <see cref="Authority"/>.</summary>
    public string Issuer => Authority;

    /// <summary>The JWKS URL.</summary>
    public string JwksUri => Authority + "/jwks";

    /// <summary>How many discovery documents were served.</summary>
    public int DiscoveryRequests => Volatile.Read(ref _discoveryRequests);

    /// <summary>How many JWKS documents were served.</summary>
    public int JwksRequests => Volatile.Read(ref _jwksRequests);

    /// <summary>When set, discovery and JWKS answer 500, as an identity provider outage.</summary>
    public bool Failing { get; set; }

    /// <summary>Starts a provider on 127.0.0.1 at a free port.</summary>
    public static async Task<TestIdentityProvider> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        TestIdentityProvider? provider = null;
        app.MapGet("/.well-known/openid-configuration", (HttpContext context) => provider!.Discovery(context));
        app.MapGet("/jwks", (HttpContext context) => provider!.Jwks(context));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        provider = new TestIdentityProvider(app, address.TrimEnd('/'));
        return provider;
    }

    /// <summary>
    /// A 2048-bit RSA key from a process-wide pool (index 0 to 63), generated on first use. A provider signs with
    /// indices 0 to 31 in order; tests that need a key the provider never had can use indices 32 to 63.
    /// </summary>
    public static RSA PooledRsa(int index) => RsaPool[index].Value;

    /// <summary>Adds an RSA key (RS256) with <paramref name="kid"/>, published unless told otherwise.</summary>
    public SecurityKey AddRsaKey(string kid, bool publish = true)
    {
        var index = Interlocked.Increment(ref _rsaKeys) - 1;
        if (index >= 32)
            throw new InvalidOperationException("A provider has at most 32 RSA keys.");
        return Add(new RsaSecurityKey(PooledRsa(index)) { KeyId = kid }, SecurityAlgorithms.RsaSha256, publish);
    }

    /// <summary>Creates an EC P-256 key (ES256) with <paramref name="kid"/>, published unless told otherwise.</summary>
    public SecurityKey AddEcKey(string kid, bool publish = true) =>
        Add(new ECDsaSecurityKey(ECDsa.Create(ECCurve.NamedCurves.nistP256)) { KeyId = kid }, SecurityAlgorithms.EcdsaSha256, publish);

    /// <summary>Rotates: creates a new RSA key with a fresh kid and publishes it next to the others.</summary>
    /// <returns>The new kid.</returns>
    public string Rotate()
    {
        var kid = $"rsa-rotated-{Interlocked.Increment(ref _rotations)}";
        AddRsaKey(kid);
        return kid;
    }

    /// <summary>Stops publishing <paramref name="kid"/>; tokens can still be signed with it.</summary>
    public void Unpublish(string kid)
    {
        lock (_lock)
            _published.Remove(kid);
    }

    /// <summary>The public key of <paramref name="kid"/> in PEM (SubjectPublicKeyInfo).</summary>
    public string PublicKeyPem(string kid)
    {
        var key = KeyOf(kid).Key;
        return key switch
        {
            RsaSecurityKey rsa => rsa.Rsa.ExportSubjectPublicKeyInfoPem(),
            ECDsaSecurityKey ec => ec.ECDsa.ExportSubjectPublicKeyInfoPem(),
            _ => throw new InvalidOperationException("Not an asymmetric key."),
        };
    }

    /// <summary>The JWKS document currently published.</summary>
    public string JwksJson()
    {
        lock (_lock)
        {
            using var stream = new MemoryStream();
            using (var json = new Utf8JsonWriter(stream))
            {
                json.WriteStartObject();
                json.WriteStartArray("keys");
                foreach (var kid in _published)
                    WriteJwk(json, kid, _keys[kid].Key, _keys[kid].Algorithm);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            return Encoding.UTF8.GetString(stream.ToArray());
        }
    }

    /// <summary>
    /// Mints a token signed with the key <paramref name="kid"/> (with its own algorithm unless
    /// <paramref name="algorithm"/> says otherwise, such as PS256 with an RSA key). Times default to now (from
    /// <paramref name="now"/>) and one hour of validity; <paramref name="claims"/> are added and override <c>sub</c>.
    /// </summary>
    public string CreateToken(
        string kid = RsaKeyId,
        string? subject = "alice",
        DateTimeOffset? now = null,
        TimeSpan? lifetime = null,
        string? issuer = null,
        string audience = DefaultAudience,
        IReadOnlyDictionary<string, object>? claims = null,
        DateTimeOffset? notBefore = null,
        string? algorithm = null)
    {
        var (key, keyAlgorithm) = KeyOf(kid);
        return Sign(new SigningCredentials(key, algorithm ?? keyAlgorithm), subject, now, lifetime, issuer, audience, claims, notBefore);
    }

    /// <summary>The signing credentials of <paramref name="kid"/>, to mint hand-made tokens.</summary>
    public SigningCredentials CredentialsFor(string kid)
    {
        var (key, algorithm) = KeyOf(kid);
        return new SigningCredentials(key, algorithm);
    }

    /// <summary>Mints a token with any signing credentials, such as a key the provider never published.</summary>
    public string Sign(
        SigningCredentials credentials,
        string? subject = "alice",
        DateTimeOffset? now = null,
        TimeSpan? lifetime = null,
        string? issuer = null,
        string audience = DefaultAudience,
        IReadOnlyDictionary<string, object>? claims = null,
        DateTimeOffset? notBefore = null)
    {
        var at = (now ?? DateTimeOffset.UtcNow).UtcDateTime;
        var all = new Dictionary<string, object>(StringComparer.Ordinal);
        if (subject is not null)
            all["sub"] = subject;
        if (claims is not null)
        {
            foreach (var (name, value) in claims)
                all[name] = value;
        }

        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer ?? Issuer,
            Audience = audience,
            IssuedAt = at,
            NotBefore = (notBefore?.UtcDateTime) ?? at,
            Expires = at + (lifetime ?? TimeSpan.FromHours(1)),
            Claims = all,
            SigningCredentials = credentials,
        });
    }

    /// <summary>An unsigned token (<c>alg: none</c>) with otherwise valid claims.</summary>
    public string CreateUnsignedToken(string subject = "alice", DateTimeOffset? now = null)
    {
        var at = (now ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();
        var header = Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""");
        var payload = Base64UrlEncoder.Encode(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["iss"] = Issuer, ["aud"] = DefaultAudience, ["sub"] = subject, ["iat"] = at, ["nbf"] = at, ["exp"] = at + 3600,
        }));
        return header + "." + payload + ".";
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private SecurityKey Add(SecurityKey key, string algorithm, bool publish)
    {
        lock (_lock)
        {
            _keys[key.KeyId] = (key, algorithm);
            if (publish && !_published.Contains(key.KeyId))
                _published.Add(key.KeyId);
        }

        return key;
    }

    private (SecurityKey Key, string Algorithm) KeyOf(string kid)
    {
        lock (_lock)
            return _keys.TryGetValue(kid, out var entry) ? entry : throw new ArgumentException($"No key '{kid}'.", nameof(kid));
    }

    private IResult Discovery(HttpContext context)
    {
        Interlocked.Increment(ref _discoveryRequests);
        if (Failing)
            return Results.StatusCode(500);
        return Results.Json(new Dictionary<string, object>
        {
            ["issuer"] = Issuer,
            ["jwks_uri"] = JwksUri,
            ["authorization_endpoint"] = Authority + "/authorize",
            ["token_endpoint"] = Authority + "/token",
            ["id_token_signing_alg_values_supported"] = new[] { "RS256", "ES256" },
            ["response_types_supported"] = new[] { "code" },
            ["subject_types_supported"] = new[] { "public" },
        });
    }

    private IResult Jwks(HttpContext context)
    {
        Interlocked.Increment(ref _jwksRequests);
        if (Failing)
            return Results.StatusCode(500);
        return Results.Text(JwksJson(), "application/json");
    }

    private static void WriteJwk(Utf8JsonWriter json, string kid, SecurityKey key, string algorithm)
    {
        json.WriteStartObject();
        json.WriteString("kid", kid);
        json.WriteString("use", "sig");
        json.WriteString("alg", algorithm);
        switch (key)
        {
            case RsaSecurityKey rsa:
                var r = rsa.Rsa.ExportParameters(false);
                json.WriteString("kty", "RSA");
                json.WriteString("n", Base64UrlEncoder.Encode(r.Modulus));
                json.WriteString("e", Base64UrlEncoder.Encode(r.Exponent));
                break;
            case ECDsaSecurityKey ec:
                var e = ec.ECDsa.ExportParameters(false);
                json.WriteString("kty", "EC");
                json.WriteString("crv", "P-256");
                json.WriteString("x", Base64UrlEncoder.Encode(e.Q.X));
                json.WriteString("y", Base64UrlEncoder.Encode(e.Q.Y));
                break;
            default:
                throw new InvalidOperationException("Not an asymmetric key.");
        }

        json.WriteEndObject();
    }
}
