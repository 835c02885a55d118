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

/// <summary>The resolver's key refreshes and its token cache.</summary>
public sealed partial class JwtIdentityResolverTests
{
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
}
