using System.Diagnostics.Metrics;
using Floodgate.AspNetCore.Identity;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Tests.Identity;

public sealed class JwtIdentityOptionsTests
{
    [Fact]
    public void Options_with_an_authority_and_an_audience_are_valid()
    {
        var options = new JwtIdentityOptions { Authority = "https://idp.example.com/realms/api" };
        options.Audiences.Add("api");

        Assert.Empty(options.Validate());
        Assert.Equal(JwtIdentityOptions.DefaultAlgorithms, options.EffectiveAlgorithms);
        Assert.Equal(["sub"], options.EffectiveSubjectClaims);
    }

    [Theory]
    [InlineData("no keys", "JwtIdentityOptions.Authority: no signing keys")]
    [InlineData("both remote sources", "JwtIdentityOptions.JwksUri: set either Authority or JwksUri")]
    [InlineData("http authority", "JwtIdentityOptions.Authority: 'http://idp.example.com' is not HTTPS")]
    [InlineData("relative jwks", "JwtIdentityOptions.JwksUri: '/jwks' is not an absolute http(s) URL")]
    [InlineData("no audience", "JwtIdentityOptions.Audiences: at least one audience is required")]
    [InlineData("no issuer", "JwtIdentityOptions.Issuers: at least one issuer is required")]
    [InlineData("alg none", "JwtIdentityOptions.Algorithms[0]: 'none' is never allowed")]
    [InlineData("unknown alg", "JwtIdentityOptions.Algorithms[0]: 'EdDSA' is not supported")]
    [InlineData("hs without secret", "JwtIdentityOptions.Algorithms: HS256/384/512 require SymmetricSecret")]
    [InlineData("short secret", "JwtIdentityOptions.SymmetricSecret: must be at least 32 bytes")]
    [InlineData("secret without hs", "JwtIdentityOptions.SymmetricSecret: list HS256")]
    [InlineData("bad jwks", "JwtIdentityOptions.JsonWebKeySet: not a JSON Web Key Set")]
    [InlineData("private jwk", "JwtIdentityOptions.JsonWebKeySet: contains a private key")]
    [InlineData("symmetric jwk", "JwtIdentityOptions.JsonWebKeySet: contains a symmetric key")]
    [InlineData("bad pem", "JwtIdentityOptions.PublicKeysPem[0]: not a PEM document")]
    [InlineData("private pem", "JwtIdentityOptions.PublicKeysPem[0]: is a private key")]
    [InlineData("private pem in a bundle", "JwtIdentityOptions.PublicKeysPem[0] (PEM block 2): is a private key")]
    [InlineData("bad key in a bundle", "JwtIdentityOptions.PublicKeysPem[0] (PEM block 1): not a valid RSA or EC public key")]
    [InlineData("skew", "JwtIdentityOptions.ClockSkew: must be between 0 and 5 minutes")]
    [InlineData("refresh interval", "JwtIdentityOptions.KeyRefreshInterval: must be at least 2 seconds")]
    [InlineData("automatic refresh", "JwtIdentityOptions.KeyAutomaticRefreshInterval: must be at least 5 minutes")]
    [InlineData("cache size", "JwtIdentityOptions.TokenCacheSize: must be 0 (no cache) or more")]
    [InlineData("duplicate subject claim", "JwtIdentityOptions.SubjectClaims: lists a claim twice")]
    [InlineData("empty plan claim", "JwtIdentityOptions.PlanClaim: must not be empty")]
    public void Invalid_options_name_the_field(string defect, string message)
    {
        var options = new JwtIdentityOptions { Authority = "https://idp.example.com" };
        options.Audiences.Add("api");
        switch (defect)
        {
            case "no keys": options.Authority = null; options.Issuers.Add("https://idp.example.com"); break;
            case "both remote sources": options.JwksUri = "https://idp.example.com/jwks"; break;
            case "http authority": options.Authority = "http://idp.example.com"; break;
            case "relative jwks": options.Authority = null; options.JwksUri = "/jwks"; options.Issuers.Add("x"); break;
            case "no audience": options.Audiences.Clear(); break;
            case "no issuer": options.Authority = null; options.JwksUri = "https://idp.example.com/jwks"; break;
            case "alg none": options.Algorithms.Add("none"); break;
            case "unknown alg": options.Algorithms.Add("EdDSA"); break;
            case "hs without secret": options.Algorithms.Add("HS256"); break;
            case "short secret": options.Algorithms.Add("HS256"); options.SymmetricSecret = "short"; break;
            case "secret without hs": options.SymmetricSecret = new string('s', 40); break;
            case "bad jwks": options.JsonWebKeySet = "{not json"; break;
            case "private jwk": options.JsonWebKeySet = PrivateJwks(); break;
            case "symmetric jwk": options.JsonWebKeySet = """{"keys":[{"kty":"oct","kid":"s","use":"sig","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}"""; break;
            case "bad pem": options.PublicKeysPem.Add("not a pem"); break;
            case "private pem": options.PublicKeysPem.Add(TestIdentityProvider.PooledRsa(32).ExportPkcs8PrivateKeyPem()); break;
            case "private pem in a bundle": options.PublicKeysPem.Add(TestIdentityProvider.PooledRsa(32).ExportSubjectPublicKeyInfoPem() + "\n" + TestIdentityProvider.PooledRsa(33).ExportPkcs8PrivateKeyPem()); break;
            case "bad key in a bundle": options.PublicKeysPem.Add("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" + TestIdentityProvider.PooledRsa(32).ExportSubjectPublicKeyInfoPem()); break;
            case "skew": options.ClockSkew = TimeSpan.FromHours(1); break;
            case "refresh interval": options.KeyRefreshInterval = TimeSpan.FromMilliseconds(100); break;
            case "automatic refresh": options.KeyAutomaticRefreshInterval = TimeSpan.FromSeconds(10); break;
            case "cache size": options.TokenCacheSize = -1; break;
            case "duplicate subject claim": options.SubjectClaims.Add("sub"); options.SubjectClaims.Add("sub"); break;
            case "empty plan claim": options.PlanClaim = " "; break;
            default: throw new ArgumentOutOfRangeException(nameof(defect));
        }

        var errors = options.Validate();
        var validator = new JwtIdentityOptionsValidator().Validate(null, options);
        var thrown = Assert.Throws<OptionsValidationException>(() => new JwtIdentityResolver(Options.Create(options)));

        Assert.Contains(errors, e => e.StartsWith(message, StringComparison.Ordinal));
        Assert.True(validator.Failed);
        Assert.Contains(message, thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_host_with_invalid_identity_options_does_not_start()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseSetting("urls", "http://127.0.0.1:0");
        builder.Services.AddFloodgateJwtIdentity(o => o.Authority = "https://idp.example.com");
        await using var app = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains("JwtIdentityOptions.Audiences: at least one audience is required", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_resolver_reports_outcomes_cache_hits_and_key_refreshes_on_the_Floodgate_meter()
    {
        await using var idp = await TestIdentityProvider.StartAsync();
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meterFactory = services.GetRequiredService<IMeterFactory>();
        var measurements = new List<(string Instrument, long Value, string? Outcome)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == meterFactory && instrument.Name.StartsWith("floodgate.identity.", StringComparison.Ordinal))
                    l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? outcome = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "outcome")
                    outcome = tag.Value as string;
            }

            lock (measurements)
                measurements.Add((instrument.Name, value, outcome));
        });
        listener.Start();
        var options = new JwtIdentityOptions { Authority = idp.Authority, RequireHttpsMetadata = false };
        options.Audiences.Add(TestIdentityProvider.DefaultAudience);
        using var resolver = new JwtIdentityResolver(Options.Create(options), meterFactory: meterFactory);
        var token = "Bearer " + idp.CreateToken();

        await resolver.ResolveAuthorizationAsync(token, CancellationToken.None);
        await resolver.ResolveAuthorizationAsync(token, CancellationToken.None);
        await resolver.ResolveAuthorizationAsync("Bearer nope", CancellationToken.None);
        await resolver.ResolveAuthorizationAsync(null, CancellationToken.None);

        // An answer from the cache without ResolveAsync is counted the same; no answer is not counted.
        var cached = new DefaultHttpContext();
        cached.Request.Headers.Authorization = token;
        Assert.True(resolver.TryResolveCached(cached, out _));
        Assert.True(resolver.TryResolveCached(new DefaultHttpContext(), out _));
        var unseen = new DefaultHttpContext();
        unseen.Request.Headers.Authorization = "Bearer " + idp.CreateToken(subject: "bob");
        Assert.False(resolver.TryResolveCached(unseen, out _));

        lock (measurements)
        {
            Assert.Equal(3, measurements.Count(m => m is ("floodgate.identity.validations", 1, "valid")));
            Assert.Single(measurements, m => m is ("floodgate.identity.validations", 1, "malformed"));
            Assert.Equal(2, measurements.Count(m => m is ("floodgate.identity.validations", 1, "anonymous")));
            Assert.Equal(2, measurements.Count(m => m.Instrument == "floodgate.identity.token_cache.hits"));
            Assert.Single(measurements, m => m is ("floodgate.identity.key_refreshes", 1, "success"));
        }
    }

    [Fact]
    public void The_demo_issuer_refuses_public_or_foreign_keys()
    {
        using var ec = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP384);

        Assert.Throws<ArgumentException>(() => DemoTokenIssuer.FromPem(TestIdentityProvider.PooledRsa(32).ExportSubjectPublicKeyInfoPem(), "iss", "aud"));
        Assert.Throws<ArgumentException>(() => DemoTokenIssuer.FromPem(ec.ExportSubjectPublicKeyInfoPem(), "iss", "aud"));
        Assert.Throws<ArgumentException>(() => DemoTokenIssuer.FromPem(ec.ExportPkcs8PrivateKeyPem(), "iss", "aud"));
        Assert.Throws<ArgumentException>(() => DemoTokenIssuer.FromPem("nothing", "iss", "aud"));
        using var rsa = DemoTokenIssuer.FromPem(TestIdentityProvider.PooledRsa(32).ExportPkcs8PrivateKeyPem(), "iss", "aud");
        Assert.Contains("\"RSA\"", rsa.PublicJsonWebKeySet, StringComparison.Ordinal);
    }

    private static string PrivateJwks()
    {
        var p = TestIdentityProvider.PooledRsa(32).ExportParameters(includePrivateParameters: true);
        static string B(byte[]? bytes) => Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(bytes);
        return $$"""{"keys":[{"kty":"RSA","kid":"k","use":"sig","n":"{{B(p.Modulus)}}","e":"{{B(p.Exponent)}}","d":"{{B(p.D)}}","p":"{{B(p.P)}}","q":"{{B(p.Q)}}","dp":"{{B(p.DP)}}","dq":"{{B(p.DQ)}}","qi":"{{B(p.InverseQ)}}"}]}""";
    }
}
