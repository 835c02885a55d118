using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Floodgate.AspNetCore.Identity;
using Floodgate.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Tests.Identity;

/// <summary>The JWT resolver against a real identity provider on loopback, with real keys and tokens.</summary>
public sealed partial class JwtIdentityResolverTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<IDisposable> _disposables = [];
    private TestIdentityProvider _idp = null!;

    public async Task InitializeAsync() => _idp = await TestIdentityProvider.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var disposable in _disposables)
            disposable.Dispose();
        await _idp.DisposeAsync();
    }

    [Fact]
    public async Task A_valid_RS256_token_resolves_to_its_subject_plan_and_claims()
    {
        var resolver = Resolver();
        var token = _idp.CreateToken(TestIdentityProvider.RsaKeyId, "alice", _time.GetUtcNow(), claims: Claims(("plan", "pro"), ("scope", "orders")));

        var result = await Resolve(resolver, "Bearer " + token);

        Assert.Equal(IdentityStatus.Valid, result.Status);
        Assert.Equal("alice", result.Subject);
        Assert.Equal("pro", result.Plan);
        Assert.Equal("orders", result.Claims!.FindFirst("scope")?.Value);
        Assert.True(result.Claims.IsAuthenticated);
        Assert.Equal(1, _idp.DiscoveryRequests);
        Assert.Equal(1, _idp.JwksRequests);
    }

    [Fact]
    public async Task A_valid_ES256_token_resolves()
    {
        var resolver = Resolver();
        var token = _idp.CreateToken(TestIdentityProvider.EcKeyId, "bob", _time.GetUtcNow());

        var result = await Resolve(resolver, "bearer " + token);

        Assert.Equal(IdentityStatus.Valid, result.Status);
        Assert.Equal("bob", result.Subject);
        Assert.Null(result.Plan);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public async Task No_credentials_resolve_to_anonymous(string? header)
    {
        var result = await Resolve(Resolver(), header);

        Assert.Equal(IdentityStatus.Anonymous, result.Status);
        Assert.Null(result.Subject);
        Assert.Equal(0, _idp.JwksRequests);
    }

    [Theory]
    [InlineData("alg none", IdentityErrors.AlgNone)]
    [InlineData("expired", IdentityErrors.Expired)]
    [InlineData("not yet valid", IdentityErrors.NotYetValid)]
    [InlineData("wrong issuer", IdentityErrors.WrongIssuer)]
    [InlineData("wrong audience", IdentityErrors.WrongAudience)]
    [InlineData("bad signature", IdentityErrors.BadSignature)]
    [InlineData("unknown key", IdentityErrors.UnknownKey)]
    [InlineData("algorithm not allowed", IdentityErrors.AlgorithmNotAllowed)]
    [InlineData("malformed", IdentityErrors.Malformed)]
    [InlineData("not base64", IdentityErrors.Malformed)]
    [InlineData("empty bearer", IdentityErrors.Malformed)]
    [InlineData("wrong scheme", IdentityErrors.WrongScheme)]
    [InlineData("missing subject", IdentityErrors.MissingSubject)]
    public async Task A_bad_token_is_invalid_with_the_reason(string defect, string description)
    {
        var resolver = Resolver();
        var now = _time.GetUtcNow();
        var header = defect switch
        {
            "alg none" => "Bearer " + _idp.CreateUnsignedToken("alice", now),
            "expired" => "Bearer " + _idp.CreateToken(now: now - TimeSpan.FromHours(2), lifetime: TimeSpan.FromHours(1)),
            "not yet valid" => "Bearer " + _idp.CreateToken(now: now, notBefore: now + TimeSpan.FromMinutes(10), lifetime: TimeSpan.FromHours(1)),
            "wrong issuer" => "Bearer " + _idp.CreateToken(now: now, issuer: "https://evil.example"),
            "wrong audience" => "Bearer " + _idp.CreateToken(now: now, audience: "other-api"),
            "bad signature" => "Bearer " + ForgedSignature(now),
            "unknown key" => "Bearer " + _idp.Sign(new SigningCredentials(NewRsaKey("never-published"), SecurityAlgorithms.RsaSha256), now: now),
            "algorithm not allowed" => "Bearer " + _idp.CreateToken(now: now, algorithm: SecurityAlgorithms.RsaSsaPssSha256),
            "malformed" => "Bearer not-a-jwt",
            "not base64" => "Bearer a.b.c",
            "empty bearer" => "Bearer ",
            "wrong scheme" => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("alice:secret")),
            "missing subject" => "Bearer " + _idp.CreateToken(subject: null, now: now),
            _ => throw new ArgumentOutOfRangeException(nameof(defect)),
        };
        if (defect == "algorithm not allowed")
            resolver = Resolver(o => o.Algorithms.Add("RS256"));

        var result = await Resolve(resolver, header);

        Assert.Equal(IdentityStatus.Invalid, result.Status);
        Assert.Equal(IdentityErrors.InvalidToken, result.Error);
        Assert.Equal(description, result.ErrorDescription);
        Assert.Null(result.Subject);
        Assert.Null(result.Claims);
    }

    [Fact]
    public async Task A_token_without_an_expiry_is_invalid()
    {
        var handler = new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false };
        var payload = $$"""{"iss":"{{_idp.Issuer}}","aud":"{{TestIdentityProvider.DefaultAudience}}","sub":"alice"}""";
        var token = handler.CreateToken(payload, _idp.CredentialsFor(TestIdentityProvider.EcKeyId));

        var result = await Resolve(Resolver(), "Bearer " + token);

        Assert.Equal(IdentityStatus.Invalid, result.Status);
        Assert.Equal(IdentityErrors.NoExpiry, result.ErrorDescription);
    }

    [Theory]
    [InlineData("""["urn:example:unknown"]""")]
    [InlineData("""["b64"]""")]
    [InlineData("""[]""")]
    [InlineData("\"exp\"")]
    public async Task A_token_with_a_critical_header_parameter_is_refused_since_none_is_understood(string crit)
    {
        // RFC 7515 section 4.1.11: a recipient must refuse a JWS whose crit names an extension it does not understand.
        var handler = new Microsoft.IdentityModel.JsonWebTokens.JsonWebTokenHandler();
        var now = _time.GetUtcNow().UtcDateTime;
        var token = handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _idp.Issuer,
            Audience = TestIdentityProvider.DefaultAudience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddHours(1),
            Claims = new Dictionary<string, object> { ["sub"] = "alice" },
            AdditionalHeaderClaims = new Dictionary<string, object>
            {
                ["crit"] = System.Text.Json.JsonDocument.Parse(crit).RootElement.Clone(),
                ["urn:example:unknown"] = true,
                ["b64"] = true,
            },
            SigningCredentials = _idp.CredentialsFor(TestIdentityProvider.RsaKeyId),
        });
        var resolver = Resolver();

        var result = await Resolve(resolver, "Bearer " + token);

        Assert.Equal(IdentityStatus.Invalid, result.Status);
        Assert.Equal(IdentityErrors.UnsupportedCritical, result.ErrorDescription);
        Assert.Equal(0, resolver.SignatureChecks);
    }

    [Fact]
    public async Task Several_authorization_headers_are_malformed()
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = new Microsoft.Extensions.Primitives.StringValues(["Bearer a", "Bearer b"]);

        var result = await Resolver().ResolveAsync(context, CancellationToken.None);

        Assert.Equal(IdentityErrors.Malformed, result.ErrorDescription);
    }

    [Fact]
    public async Task An_HS256_token_is_rejected_when_only_asymmetric_keys_are_configured()
    {
        // Algorithm confusion: sign HS256 with the RSA public key as the HMAC secret, naming the RSA kid.
        var resolver = Resolver();
        var publicPem = Encoding.UTF8.GetBytes(_idp.PublicKeyPem(TestIdentityProvider.RsaKeyId));
        var confused = new SymmetricSecurityKey(publicPem) { KeyId = TestIdentityProvider.RsaKeyId };
        var token = _idp.Sign(new SigningCredentials(confused, SecurityAlgorithms.HmacSha256), now: _time.GetUtcNow());

        var result = await Resolve(resolver, "Bearer " + token);

        Assert.Equal(IdentityStatus.Invalid, result.Status);
        Assert.Equal(IdentityErrors.AlgorithmNotAllowed, result.ErrorDescription);
        Assert.Equal(0, resolver.SignatureChecks);
    }

    [Fact]
    public async Task HS256_needs_the_explicit_secret_even_when_allowed()
    {
        var secret = "an explicit shared secret of 32+ bytes";
        var resolver = Resolver(o =>
        {
            o.SymmetricSecret = secret;
            o.Algorithms.Add("RS256");
            o.Algorithms.Add("HS256");
        });
        var now = _time.GetUtcNow();
        var confused = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(_idp.PublicKeyPem(TestIdentityProvider.RsaKeyId)));
        var good = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret));

        var forged = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(confused, SecurityAlgorithms.HmacSha256), now: now));
        var valid = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(good, SecurityAlgorithms.HmacSha256), "carol", now));
        var rsa = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "dave", now: now));

        Assert.Equal(IdentityStatus.Invalid, forged.Status);
        Assert.Equal(IdentityErrors.BadSignature, forged.ErrorDescription);
        Assert.Equal("carol", valid.Subject);
        Assert.Equal("dave", rsa.Subject);
    }

    private JwtIdentityResolver Resolver(Action<JwtIdentityOptions>? configure = null, ILogger<JwtIdentityResolver>? logger = null)
    {
        var options = new JwtIdentityOptions { Authority = _idp.Authority, RequireHttpsMetadata = false };
        options.Audiences.Add(TestIdentityProvider.DefaultAudience);
        configure?.Invoke(options);
        var resolver = new JwtIdentityResolver(Options.Create(options), _time, logger);
        _disposables.Add(resolver);
        return resolver;
    }

    private static async Task<IdentityResult> Resolve(JwtIdentityResolver resolver, string? authorization) =>
        await resolver.ResolveAsync(Context(authorization), CancellationToken.None);

    private static DefaultHttpContext Context(string? authorization)
    {
        var context = new DefaultHttpContext();
        if (authorization is not null)
            context.Request.Headers.Authorization = authorization;
        return context;
    }

    private static Dictionary<string, object> Claims(params (string Name, object Value)[] claims) =>
        claims.ToDictionary(c => c.Name, c => c.Value, StringComparer.Ordinal);

    /// <summary>A self-signed certificate for <paramref name="key"/>, in PEM.</summary>
    private string SelfSigned(AsymmetricAlgorithm key)
    {
        var now = _time.GetUtcNow();
        var request = key switch
        {
            RSA rsa => new CertificateRequest("CN=floodgate-test", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            ECDsa ec => new CertificateRequest("CN=floodgate-test", ec, HashAlgorithmName.SHA256),
            _ => throw new ArgumentOutOfRangeException(nameof(key)),
        };
        using var certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));
        return certificate.ExportCertificatePem();
    }

    /// <summary>
    /// A resolver without a remote source: the provider's published keys as a static JWKS, and a PEM key ("pem-only",
    /// unpublished, without a kid).
    /// </summary>
    private (JwtIdentityResolver Resolver, ECDsaSecurityKey PemKey) StaticJwksAndPemResolver()
    {
        var pemKey = (ECDsaSecurityKey)_idp.AddEcKey("pem-only", publish: false);
        var jwks = _idp.JwksJson();
        var resolver = Resolver(o =>
        {
            o.Authority = null;
            o.JsonWebKeySet = jwks;
            o.PublicKeysPem.Add(_idp.PublicKeyPem("pem-only"));
            o.Issuers.Add(_idp.Issuer);
        });
        return (resolver, pemKey);
    }

    /// <summary>An RSA key the provider never had.</summary>
    private static RsaSecurityKey NewRsaKey(string kid) => new(TestIdentityProvider.PooledRsa(32)) { KeyId = kid };

    /// <summary>A token whose header names the provider's RSA kid, signed by another RSA key.</summary>
    private string ForgedSignature(DateTimeOffset now) =>
        _idp.Sign(new SigningCredentials(NewRsaKey(TestIdentityProvider.RsaKeyId), SecurityAlgorithms.RsaSha256), now: now);
}
