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
public sealed class JwtIdentityResolverTests : IAsyncLifetime
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

    [Fact]
    public async Task A_token_with_a_new_kid_validates_once_the_provider_publishes_it()
    {
        var resolver = Resolver();
        var now = _time.GetUtcNow();
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, "Bearer " + _idp.CreateToken(now: now))).Status);
        Assert.Equal(1, _idp.JwksRequests);

        // The first fetch starts the unknown-kid refresh interval.
        _time.Advance(TimeSpan.FromSeconds(30));
        var kid = _idp.Rotate();
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            Task.Run(() => Resolve(resolver, "Bearer " + _idp.CreateToken(kid, $"erin-{i}", now)))));

        Assert.All(concurrent, r => Assert.Equal(IdentityStatus.Valid, r.Status));
        Assert.Equal("erin-7", concurrent[7].Subject);
        Assert.Equal(2, _idp.JwksRequests);

        // The old key still works, and the new one keeps working without another fetch.
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "frank", now: now))).Status);
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, "Bearer " + _idp.CreateToken(kid, "gina", now))).Status);
        Assert.Equal(2, _idp.JwksRequests);
    }

    [Fact]
    public async Task A_storm_of_forged_kids_causes_at_most_one_refresh_per_interval()
    {
        var resolver = Resolver();
        var now = _time.GetUtcNow();
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, "Bearer " + _idp.CreateToken(now: now))).Status);
        var forger = NewRsaKey("unused");

        // The first fetch starts the unknown-kid refresh interval.
        _time.Advance(TimeSpan.FromSeconds(30));

        var storm = Enumerable.Range(0, 300).Select(i =>
        {
            var key = new RsaSecurityKey(forger.Rsa) { KeyId = $"forged-{i}" };
            return Task.Run(() => Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(key, SecurityAlgorithms.RsaSha256), now: now)));
        }).ToArray();
        var results = await Task.WhenAll(storm);

        Assert.All(results, r => Assert.Equal(IdentityErrors.UnknownKey, r.ErrorDescription));
        Assert.Equal(2, _idp.JwksRequests);
        Assert.Equal(1, resolver.SignatureChecks);

        // Still inside the interval: more forged kids cause no fetch at all.
        _time.Advance(TimeSpan.FromSeconds(29));
        var fetches = _idp.JwksRequests;
        var again = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(new RsaSecurityKey(forger.Rsa) { KeyId = "forged-late" }, SecurityAlgorithms.RsaSha256), now: now));
        Assert.Equal(IdentityErrors.UnknownKey, again.ErrorDescription);
        Assert.Equal(fetches, _idp.JwksRequests);
    }

    [Fact]
    public async Task A_repeated_token_is_validated_once()
    {
        var resolver = Resolver();
        var header = "Bearer " + _idp.CreateToken(subject: "alice", now: _time.GetUtcNow(), claims: Claims(("plan", "pro")));

        var first = await Resolve(resolver, header);
        var second = await Resolve(resolver, header);
        var third = await Resolve(resolver, header);

        Assert.Equal(1, resolver.SignatureChecks);
        Assert.Equal(1, resolver.CachedTokens);
        Assert.Equal("alice", third.Subject);
        Assert.Equal("pro", second.Plan);
        Assert.Same(first.Claims, third.Claims);
    }

    [Fact]
    public async Task TryResolveCached_answers_a_token_only_once_it_has_been_validated_and_never_checks_a_signature()
    {
        var resolver = Resolver();
        var header = "Bearer " + _idp.CreateToken(subject: "alice", now: _time.GetUtcNow(), claims: Claims(("plan", "pro")));

        Assert.False(resolver.TryResolveCached(Context(header), out var unseen));
        Assert.Equal(default, unseen);
        Assert.Equal(0, resolver.SignatureChecks);
        Assert.Equal(0, _idp.DiscoveryRequests + _idp.JwksRequests);

        var validated = await Resolve(resolver, header);
        Assert.Equal(1, resolver.SignatureChecks);

        Assert.True(resolver.TryResolveCached(Context(header), out var cached));
        Assert.True(resolver.TryResolveCached(Context(header), out _));
        Assert.Equal(IdentityStatus.Valid, cached.Status);
        Assert.Equal("alice", cached.Subject);
        Assert.Equal("pro", cached.Plan);
        Assert.Same(validated.Claims, cached.Claims);
        Assert.Equal(1, resolver.SignatureChecks);

        // Another token of the same subject is a token of its own, not validated yet.
        Assert.False(resolver.TryResolveCached(Context("Bearer " + _idp.CreateToken(subject: "alice", now: _time.GetUtcNow() - TimeSpan.FromSeconds(1))), out _));
        Assert.Equal(1, resolver.SignatureChecks);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    public void TryResolveCached_answers_anonymous_without_credentials(string? header)
    {
        var resolver = Resolver();

        Assert.True(resolver.TryResolveCached(Context(header), out var identity));

        Assert.Equal(IdentityStatus.Anonymous, identity.Status);
        Assert.Null(identity.Subject);
        Assert.Equal(0, _idp.DiscoveryRequests + _idp.JwksRequests);
    }

    [Theory]
    [InlineData("Bearer not-a-jwt")]
    [InlineData("Bearer a.b.c")]
    [InlineData("Bearer ")]
    [InlineData("Bearer")]
    [InlineData("Basic YWxpY2U6c2VjcmV0")]
    [InlineData("Token abc")]
    public async Task TryResolveCached_leaves_defective_credentials_to_ResolveAsync(string header)
    {
        var resolver = Resolver();

        Assert.False(resolver.TryResolveCached(Context(header), out var identity));
        Assert.Equal(default, identity);

        // Still defective once resolved: nothing defective is ever cached.
        Assert.Equal(IdentityStatus.Invalid, (await Resolve(resolver, header)).Status);
        Assert.False(resolver.TryResolveCached(Context(header), out _));
        Assert.Equal(0, resolver.SignatureChecks);
    }

    [Fact]
    public async Task TryResolveCached_leaves_several_headers_an_expired_token_and_a_disabled_cache_to_ResolveAsync()
    {
        var resolver = Resolver();
        var token = "Bearer " + _idp.CreateToken(now: _time.GetUtcNow(), lifetime: TimeSpan.FromSeconds(60));
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, token)).Status);
        Assert.True(resolver.TryResolveCached(Context(token), out _));

        var several = new DefaultHttpContext();
        several.Request.Headers.Authorization = new Microsoft.Extensions.Primitives.StringValues([token, token]);
        Assert.False(resolver.TryResolveCached(several, out _));

        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.False(resolver.TryResolveCached(Context(token), out _));

        var uncached = Resolver(o => o.TokenCacheSize = 0);
        var other = "Bearer " + _idp.CreateToken(now: _time.GetUtcNow());
        Assert.Equal(IdentityStatus.Valid, (await Resolve(uncached, other)).Status);
        Assert.False(uncached.TryResolveCached(Context(other), out _));
        Assert.True(uncached.TryResolveCached(Context(null), out var anonymous));
        Assert.Equal(IdentityStatus.Anonymous, anonymous.Status);
    }

    [Fact]
    public async Task A_cached_token_that_has_expired_does_not_validate()
    {
        var resolver = Resolver(o => o.ClockSkew = TimeSpan.FromSeconds(5));
        var header = "Bearer " + _idp.CreateToken(now: _time.GetUtcNow(), lifetime: TimeSpan.FromSeconds(60));
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, header)).Status);

        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, header)).Status);
        Assert.Equal(1, resolver.SignatureChecks);

        _time.Advance(TimeSpan.FromSeconds(7));
        var expired = await Resolve(resolver, header);

        Assert.Equal(IdentityStatus.Invalid, expired.Status);
        Assert.Equal(IdentityErrors.Expired, expired.ErrorDescription);
        Assert.Equal(0, resolver.CachedTokens);
    }

    [Fact]
    public async Task The_token_cache_is_bounded()
    {
        var resolver = Resolver(o => o.TokenCacheSize = 20);
        for (var i = 0; i < 100; i++)
            Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: $"user-{i}", now: _time.GetUtcNow()))).Status);

        Assert.InRange(resolver.CachedTokens, 1, 20);
    }

    [Fact]
    public async Task Combined_subject_claims_are_unambiguous()
    {
        var resolver = Resolver(o =>
        {
            o.SubjectClaims.Add("sub");
            o.SubjectClaims.Add("account_id");
        });
        var now = _time.GetUtcNow();

        var alice = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "alice", now: now, claims: Claims(("account_id", "acme"))));
        var left = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "a|b", now: now, claims: Claims(("account_id", "c"))));
        var right = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "a", now: now, claims: Claims(("account_id", "b|c"))));
        var colon = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "1:a", now: now, claims: Claims(("account_id", "b"))));
        var colon2 = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "1", now: now, claims: Claims(("account_id", "a1:b"))));
        var missing = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "alice", now: now));

        Assert.Equal("5:alice4:acme", alice.Subject);
        Assert.NotEqual(left.Subject, right.Subject);
        Assert.NotEqual(colon.Subject, colon2.Subject);
        Assert.Equal(IdentityStatus.Invalid, missing.Status);
        Assert.Equal(IdentityErrors.MissingSubject, missing.ErrorDescription);
    }

    [Fact]
    public async Task The_plan_comes_from_the_configured_claim_with_a_default()
    {
        var resolver = Resolver(o =>
        {
            o.PlanClaim = "tier";
            o.DefaultPlan = "free";
        });
        var now = _time.GetUtcNow();

        var pro = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "alice", now: now, claims: Claims(("tier", "pro"))));
        var none = await Resolve(resolver, "Bearer " + _idp.CreateToken(subject: "bob", now: now, claims: Claims(("plan", "pro"))));

        Assert.Equal("pro", pro.Plan);
        Assert.Equal("free", none.Plan);
    }

    [Fact]
    public async Task An_explicit_JWKS_url_is_a_key_source()
    {
        var resolver = Resolver(o =>
        {
            o.Authority = null;
            o.JwksUri = _idp.JwksUri;
            o.Issuers.Add(_idp.Issuer);
        });

        var result = await Resolve(resolver, "Bearer " + _idp.CreateToken(TestIdentityProvider.EcKeyId, now: _time.GetUtcNow()));

        Assert.Equal(IdentityStatus.Valid, result.Status);
        Assert.Equal(0, _idp.DiscoveryRequests);
        Assert.Equal(1, _idp.JwksRequests);
    }

    [Fact]
    public async Task Static_JWKS_and_PEM_keys_need_no_fetch()
    {
        var (resolver, pemKey) = StaticJwksAndPemResolver();
        var now = _time.GetUtcNow();

        var fromJwks = await Resolve(resolver, "Bearer " + _idp.CreateToken(TestIdentityProvider.RsaKeyId, "alice", now));
        var fromPem = await Resolve(resolver, "Bearer " + _idp.CreateToken("pem-only", "bob", now));
        var unknown = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(NewRsaKey("stranger"), SecurityAlgorithms.RsaSha256), now: now));

        Assert.Equal("alice", fromJwks.Subject);
        Assert.Equal("bob", fromPem.Subject);
        Assert.Equal(IdentityStatus.Invalid, unknown.Status);
        Assert.Equal(0, _idp.DiscoveryRequests + _idp.JwksRequests);
        Assert.NotNull(pemKey);
    }

    [Fact]
    public async Task A_PEM_bundle_yields_every_public_key_and_certificate_in_it()
    {
        var rsa = TestIdentityProvider.PooledRsa(33);
        var rsaTraditional = TestIdentityProvider.PooledRsa(34);
        var rsaCertified = TestIdentityProvider.PooledRsa(35);
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ecCertified = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var keys = rsa.ExportSubjectPublicKeyInfoPem() + "\n" + ec.ExportSubjectPublicKeyInfoPem() + "\n" + rsaTraditional.ExportRSAPublicKeyPem() + "\n";

        // A certificate bundle as tools write it, with text between the blocks.
        var certificates = "subject=CN=one\n" + SelfSigned(rsaCertified) + "\nsubject=CN=two\n" + SelfSigned(ecCertified) + "\n";
        var resolver = Resolver(o =>
        {
            o.Authority = null;
            o.PublicKeysPem.Add(keys);
            o.PublicKeysPem.Add(certificates);
            o.Issuers.Add(_idp.Issuer);
        });
        var now = _time.GetUtcNow();
        SigningCredentials[] signers =
        [
            new(new RsaSecurityKey(rsa) { KeyId = "first" }, SecurityAlgorithms.RsaSha256),
            new(new ECDsaSecurityKey(ec) { KeyId = "second" }, SecurityAlgorithms.EcdsaSha256),
            new(new RsaSecurityKey(rsaTraditional), SecurityAlgorithms.RsaSha256),
            new(new RsaSecurityKey(rsaCertified) { KeyId = "from-the-idp" }, SecurityAlgorithms.RsaSha256),
            new(new ECDsaSecurityKey(ecCertified), SecurityAlgorithms.EcdsaSha256),
        ];

        for (var i = 0; i < signers.Length; i++)
        {
            var result = await Resolve(resolver, "Bearer " + _idp.Sign(signers[i], $"user-{i}", now));
            Assert.True(result.Status == IdentityStatus.Valid, $"signer {i}: {result.ErrorDescription}");
            Assert.Equal($"user-{i}", result.Subject);
        }
    }

    [Fact]
    public async Task A_certificate_is_tried_for_a_token_of_any_kid()
    {
        // A certificate carries no kid; its thumbprint must not become one that tokens would have to name.
        var rsa = TestIdentityProvider.PooledRsa(36);
        var resolver = Resolver(o =>
        {
            o.Authority = null;
            o.PublicKeysPem.Add(SelfSigned(rsa));
            o.Issuers.Add(_idp.Issuer);
        });

        var result = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = "idp-key-7" }, SecurityAlgorithms.RsaSha256), now: _time.GetUtcNow()));

        Assert.True(result.Status == IdentityStatus.Valid, result.ErrorDescription);
    }

    [Fact]
    public async Task A_token_naming_an_unknown_kid_is_checked_only_against_the_keys_without_a_kid()
    {
        var (resolver, pemKey) = StaticJwksAndPemResolver();
        var now = _time.GetUtcNow();
        var published = ((RsaSecurityKey)_idp.CredentialsFor(TestIdentityProvider.RsaKeyId).Key).Rsa;

        // A key without a kid (PEM) verifies a token of any kid: issuers put their own kids in tokens.
        var anyKid = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(new ECDsaSecurityKey(pemKey.ECDsa) { KeyId = "idp-key-9" }, SecurityAlgorithms.EcdsaSha256), "alice", now));

        // A key with a kid is tried only for a token naming it: signed with rsa-1 but naming an unknown kid, the
        // token is checked against the PEM key alone, and refused.
        var misnamed = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(new RsaSecurityKey(published) { KeyId = "forged" }, SecurityAlgorithms.RsaSha256), "bob", now));
        var named = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(new RsaSecurityKey(published) { KeyId = TestIdentityProvider.RsaKeyId }, SecurityAlgorithms.RsaSha256), "carol", now));
        var unnamed = await Resolve(resolver, "Bearer " + _idp.Sign(new SigningCredentials(new RsaSecurityKey(published), SecurityAlgorithms.RsaSha256), "dave", now));

        Assert.True(anyKid.Status == IdentityStatus.Valid, anyKid.ErrorDescription);
        Assert.Equal(IdentityStatus.Invalid, misnamed.Status);
        Assert.Equal(IdentityErrors.BadSignature, misnamed.ErrorDescription);
        Assert.Equal("carol", named.Subject);
        Assert.Equal("dave", unnamed.Subject);
    }

    [Fact]
    public async Task An_identity_provider_outage_answers_unavailable_with_a_retry_time_without_a_fetch_per_request()
    {
        _idp.Failing = true;
        var resolver = Resolver();
        var header = "Bearer " + _idp.CreateToken(now: _time.GetUtcNow());

        var first = await Resolve(resolver, header);
        _time.Advance(TimeSpan.FromSeconds(10));
        var second = await Resolve(resolver, header);

        // Not invalid: the token may well be good, and a client told invalid_token would throw it away.
        Assert.Equal(IdentityStatus.Unavailable, first.Status);
        Assert.Null(first.Error);
        Assert.Equal(IdentityErrors.KeysUnavailable, first.ErrorDescription);
        Assert.Equal(TimeSpan.FromSeconds(30), first.RetryAfter);
        Assert.Equal(IdentityStatus.Unavailable, second.Status);
        Assert.Equal(TimeSpan.FromSeconds(20), second.RetryAfter);
        Assert.Equal(1, _idp.DiscoveryRequests);
        Assert.False(resolver.TryResolveCached(Context(header), out _));

        _idp.Failing = false;
        _time.Advance(TimeSpan.FromSeconds(21));
        Assert.Equal(IdentityStatus.Valid, (await Resolve(resolver, header)).Status);
    }

    [Fact]
    public async Task Static_keys_validate_while_the_remote_keys_are_unavailable()
    {
        _idp.AddEcKey("pem-only", publish: false);
        _idp.Failing = true;
        var resolver = Resolver(o => o.PublicKeysPem.Add(_idp.PublicKeyPem("pem-only")));
        var now = _time.GetUtcNow();

        var fromPem = await Resolve(resolver, "Bearer " + _idp.CreateToken("pem-only", "alice", now));
        var fromProvider = await Resolve(resolver, "Bearer " + _idp.CreateToken(TestIdentityProvider.RsaKeyId, "bob", now));
        var expired = await Resolve(resolver, "Bearer " + _idp.CreateToken("pem-only", "carol", now - TimeSpan.FromHours(2), lifetime: TimeSpan.FromHours(1)));

        Assert.True(fromPem.Status == IdentityStatus.Valid, fromPem.ErrorDescription);
        Assert.Equal("alice", fromPem.Subject);

        // Only the provider's keys could tell whether this one is good: it is unavailable, not invalid.
        Assert.Equal(IdentityStatus.Unavailable, fromProvider.Status);
        Assert.Equal(IdentityErrors.KeysUnavailable, fromProvider.ErrorDescription);

        // A static key verified this one, so its other defects are known: it is invalid.
        Assert.Equal(IdentityStatus.Invalid, expired.Status);
        Assert.Equal(IdentityErrors.Expired, expired.ErrorDescription);

        // Once the provider is back, its keys and the static ones both validate.
        _idp.Failing = false;
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal("bob", (await Resolve(resolver, "Bearer " + _idp.CreateToken(TestIdentityProvider.RsaKeyId, "bob", _time.GetUtcNow()))).Subject);
        Assert.Equal("dave", (await Resolve(resolver, "Bearer " + _idp.CreateToken("pem-only", "dave", _time.GetUtcNow()))).Subject);
    }

    [Fact]
    public async Task While_the_discovered_issuer_is_unknown_a_static_key_token_of_another_issuer_is_unavailable()
    {
        // Without configured issuers the valid issuer comes from discovery (and the authority itself): during an outage
        // only the authority is known, so a token naming another issuer cannot be judged yet.
        _idp.AddEcKey("pem-only", publish: false);
        _idp.Failing = true;
        var resolver = Resolver(o => o.PublicKeysPem.Add(_idp.PublicKeyPem("pem-only")));
        var now = _time.GetUtcNow();

        var other = await Resolve(resolver, "Bearer " + _idp.CreateToken("pem-only", "alice", now, issuer: _idp.Issuer + "/"));
        var authority = await Resolve(resolver, "Bearer " + _idp.CreateToken("pem-only", "bob", now));

        Assert.Equal(IdentityStatus.Unavailable, other.Status);
        Assert.Equal("bob", authority.Subject);

        // With configured issuers, the issuer check needs no provider: a wrong one is invalid.
        var configured = Resolver(o =>
        {
            o.PublicKeysPem.Add(_idp.PublicKeyPem("pem-only"));
            o.Issuers.Add(_idp.Issuer);
        });
        var wrong = await Resolve(configured, "Bearer " + _idp.CreateToken("pem-only", "carol", now, issuer: _idp.Issuer + "/"));
        Assert.Equal(IdentityErrors.WrongIssuer, wrong.ErrorDescription);
    }

    [Fact]
    public async Task Rejections_are_logged_within_a_budget_the_size_of_the_engine_s_and_the_rest_are_counted()
    {
        // The log budget's burst (LogBudget.Burst, shared source the engine and this assembly both compile in, so a test
        // that sees both assemblies' internals cannot name it): 20 lines at once, then 10 a second.
        const int LogBurst = 20;
        var logs = new FakeLogger<JwtIdentityResolver>();
        var resolver = Resolver(logger: logs);

        // The rejection lines (event 4100).
        List<string> Rejections() => [.. logs.Collector.GetSnapshot().Where(r => r.Id.Id == 4100).Select(r => r.Message)];

        for (var i = 0; i < 200; i++)
            Assert.Equal(IdentityStatus.Invalid, (await Resolve(resolver, "Bearer not-a-jwt")).Status);

        Assert.Equal(LogBurst, Rejections().Count);
        Assert.All(Rejections(), line => Assert.Equal("Bearer token rejected: malformed (0 earlier rejections not logged).", line));

        // A second later the budget has refilled by 10 lines; the first one reports what was left out.
        _time.Advance(TimeSpan.FromSeconds(1));
        await Resolve(resolver, "Bearer not-a-jwt");
        Assert.Equal(LogBurst + 1, Rejections().Count);
        Assert.Equal($"Bearer token rejected: malformed ({200 - LogBurst} earlier rejections not logged).", Rejections()[^1]);
    }

    [Fact]
    public async Task Demo_tokens_validate_against_the_demo_public_key_set()
    {
        using var demo = DemoTokenIssuer.CreateEcdsa("https://floodgate.demo", "demo-api", timeProvider: _time);
        using var reloaded = DemoTokenIssuer.FromPem(demo.ExportPrivateKeyPem(), demo.Issuer, demo.Audience, demo.KeyId, _time);
        var options = new JwtIdentityOptions { JsonWebKeySet = demo.PublicJsonWebKeySet };
        options.Issuers.Add(demo.Issuer);
        options.Audiences.Add(demo.Audience);
        using var resolver = new JwtIdentityResolver(Options.Create(options), _time);

        var minted = await resolver.ResolveAuthorizationAsync("Bearer " + demo.Issue("alice", "free"), CancellationToken.None);
        var fromPem = await resolver.ResolveAuthorizationAsync("Bearer " + reloaded.Issue("bob", lifetime: TimeSpan.FromMinutes(5)), CancellationToken.None);
        _time.Advance(TimeSpan.FromMinutes(10));
        var later = await resolver.ResolveAuthorizationAsync("Bearer " + DemoToken(reloaded), CancellationToken.None);

        Assert.Equal("alice", minted.Subject);
        Assert.Equal("free", minted.Plan);
        Assert.Equal("bob", fromPem.Subject);
        Assert.Equal(IdentityStatus.Valid, later.Status);
        Assert.DoesNotContain("\"d\"", demo.PublicJsonWebKeySet, StringComparison.Ordinal);

        static string DemoToken(DemoTokenIssuer issuer) => issuer.Issue("carol");
    }

    [Fact]
    public async Task A_real_request_through_Kestrel_resolves_its_bearer_token()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Services.AddSingleton<TimeProvider>(_time);
        builder.Services.AddFloodgateJwtIdentity(o =>
        {
            o.Authority = _idp.Authority;
            o.RequireHttpsMetadata = false;
            o.Audiences.Add(TestIdentityProvider.DefaultAudience);
        });
        await using var app = builder.Build();
        app.MapGet("/whoami", async (HttpContext context, IIdentityResolver identity) =>
        {
            var result = await identity.ResolveAsync(context, context.RequestAborted);
            return result.Status == IdentityStatus.Valid
                ? Results.Text($"{result.Subject}/{result.Plan}")
                : Results.Text($"{result.Status}:{result.ErrorDescription}", statusCode: result.Status == IdentityStatus.Invalid ? 401 : 200);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        using var client = new HttpClient { BaseAddress = new Uri(address) };

        using var anonymous = await client.GetAsync("/whoami");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/whoami");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _idp.CreateToken(subject: "alice", now: _time.GetUtcNow(), claims: Claims(("plan", "pro"))));
        using var valid = await client.SendAsync(request);
        using var bad = new HttpRequestMessage(HttpMethod.Get, "/whoami");
        bad.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _idp.CreateToken(now: _time.GetUtcNow(), audience: "elsewhere"));
        using var invalid = await client.SendAsync(bad);

        Assert.Equal("Anonymous:", await anonymous.Content.ReadAsStringAsync());
        Assert.Equal("alice/pro", await valid.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, invalid.StatusCode);
        Assert.Equal("Invalid:" + IdentityErrors.WrongAudience, await invalid.Content.ReadAsStringAsync());
        Assert.IsType<JwtIdentityResolver>(app.Services.GetRequiredService<IIdentityResolver>());
        await app.StopAsync();
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
