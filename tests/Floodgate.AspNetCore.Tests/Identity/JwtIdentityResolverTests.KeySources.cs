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

/// <summary>Claims and plans, key sources (JWKS, PEM, certificates), outages and logging, and a request through Kestrel.</summary>
public sealed partial class JwtIdentityResolverTests
{
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
}
