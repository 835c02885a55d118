using Floodgate.ApiKeys;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Tests.Apps;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.AspNetCore.Tests.Identity;

/// <summary>API keys as an identity: the key resolver, the resolver that routes between keys and JWTs, and an app using both.</summary>
public sealed class ApiKeyIdentityTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
    private readonly MemoryApiKeyStore _store = new();

    [Fact]
    public async Task A_stored_key_resolves_to_its_subject_plan_and_claims_as_a_bearer_token_or_in_the_header()
    {
        var resolver = Resolver(new ApiKeyIdentityOptions { Header = "X-API-Key", DefaultPlan = "free" });
        var (key, id) = await CreateAsync("alice", account: "acme", plan: "pro");
        var (other, _) = await CreateAsync("bob");

        Assert.True(resolver.TryResolveCached(Bearer(key), out var identity));
        Assert.Equal((IdentityStatus.Valid, "alice", "pro"), (identity.Status, identity.Subject, identity.Plan));
        Assert.Equal(ApiKeyIdentityResolver.AuthenticationType, identity.Claims!.AuthenticationType);
        Assert.Equal(["alice", id, "pro", "acme"], identity.Claims.Claims.Select(c => c.Value));

        var header = new DefaultHttpContext();
        header.Request.Headers["X-API-Key"] = other;
        identity = await resolver.ResolveAsync(header, CancellationToken.None);
        Assert.Equal((IdentityStatus.Valid, "bob", "free"), (identity.Status, identity.Subject, identity.Plan));

        // Its use is noted, to the second, on the key's entry.
        Assert.True(_store.TryFind(id, out var entry));
        Assert.Equal(_time.GetUtcNow(), entry.LastUsedAt);
    }

    [Fact]
    public async Task Unknown_wrong_expired_and_malformed_keys_are_invalid_and_only_a_known_valid_key_is_answered_at_once()
    {
        var resolver = Resolver(new ApiKeyIdentityOptions { Header = "X-API-Key" });
        var (key, _) = await CreateAsync("alice", ttl: TimeSpan.FromHours(1));
        var unknown = "fg_live_aaaaaaaaaaaa_" + key[^32..];
        var wrong = key[..^1] + (key[^1] == 'a' ? 'b' : 'a');

        foreach (var (credential, description) in new[] { (unknown, IdentityErrors.UnknownApiKey), (wrong, IdentityErrors.UnknownApiKey), ("fg_live_short", IdentityErrors.MalformedApiKey) })
        {
            Assert.False(resolver.TryResolveCached(Bearer(credential), out _));
            var identity = await resolver.ResolveAsync(Bearer(credential), CancellationToken.None);
            Assert.Equal((IdentityStatus.Invalid, IdentityErrors.InvalidToken, description), (identity.Status, identity.Error, identity.ErrorDescription));
        }

        // Two key headers, and a JWT where a key is looked for, are malformed keys; no credentials is anonymous.
        var twice = new DefaultHttpContext();
        twice.Request.Headers["X-API-Key"] = new Microsoft.Extensions.Primitives.StringValues([key, key]);
        Assert.Equal(IdentityErrors.MalformedApiKey, (await resolver.ResolveAsync(twice, CancellationToken.None)).ErrorDescription);
        Assert.Equal(IdentityErrors.MalformedApiKey, (await resolver.ResolveAsync(Bearer("eyJhbGciOiJFUzI1NiJ9.e30.sig"), CancellationToken.None)).ErrorDescription);
        Assert.True(resolver.TryResolveCached(new DefaultHttpContext(), out var anonymous));
        Assert.Equal(IdentityStatus.Anonymous, anonymous.Status);

        _time.Advance(TimeSpan.FromHours(1));
        Assert.False(resolver.TryResolveCached(Bearer(key), out _));
        Assert.Equal(IdentityErrors.ApiKeyExpired, (await resolver.ResolveAsync(Bearer(key), CancellationToken.None)).ErrorDescription);
    }

    [Fact]
    public async Task Verifying_a_known_key_allocates_nothing()
    {
        var resolver = Resolver(new ApiKeyIdentityOptions());
        var (key, _) = await CreateAsync("alice");
        var request = Bearer(key);
        Assert.True(resolver.TryResolveCached(request, out _));

        var fewest = long.MaxValue;
        for (var round = 0; round < 5; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 100; i++)
            {
                _ = resolver.TryResolveCached(request, out _);
            }

            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        Assert.Equal(0, fewest);
    }

    [Fact]
    public async Task The_credential_resolver_sends_keys_to_the_key_resolver_and_the_rest_to_jwts_as_the_endpoint_accepts()
    {
        var keys = Resolver(new ApiKeyIdentityOptions());
        var tokens = new FixedResolver("from-jwt");
        var resolver = new CredentialIdentityResolver(tokens, keys);
        var (key, _) = await CreateAsync("alice");

        Assert.Equal("alice", (await resolver.ResolveAsync(Bearer(key), CancellationToken.None)).Subject);
        Assert.Equal("from-jwt", (await resolver.ResolveAsync(Bearer("eyJ.e30.sig"), CancellationToken.None)).Subject);

        // Keys only: a JWT is a malformed key. JWTs only: a key goes to the JWT resolver.
        var keysOnly = WithEndpoint(Bearer("eyJ.e30.sig"), CredentialKinds.ApiKey);
        Assert.Equal(IdentityErrors.MalformedApiKey, (await resolver.ResolveAsync(keysOnly, CancellationToken.None)).ErrorDescription);
        var jwtOnly = WithEndpoint(Bearer(key), CredentialKinds.Jwt);
        Assert.Equal("from-jwt", (await resolver.ResolveAsync(jwtOnly, CancellationToken.None)).Subject);
        Assert.True(resolver.TryResolveCached(WithEndpoint(Bearer(key), CredentialKinds.ApiKey), out var cached));
        Assert.Equal("alice", cached.Subject);

        // Without a JWT resolver, what is not a key is still looked at as one.
        var alone = new CredentialIdentityResolver(null, keys);
        Assert.Equal(IdentityErrors.MalformedApiKey, (await alone.ResolveAsync(Bearer("eyJ.e30.sig"), CancellationToken.None)).ErrorDescription);
    }

    [Theory]
    [InlineData("fg live", null)]
    [InlineData("eyJ_", null)]
    [InlineData("fg_live_", "Authorization")]
    [InlineData("fg_live_", "X API Key")]
    public void Bad_options_are_refused_naming_the_field(string prefix, string? header)
    {
        var options = new ApiKeyIdentityOptions { Prefix = prefix, Header = header };
        Assert.Single(options.Validate());
        Assert.Throws<ArgumentException>(() => Resolver(options));
    }

    [Fact]
    public async Task In_an_app_a_key_and_a_jwt_of_one_subject_share_its_budget_and_an_endpoint_can_take_keys_only()
    {
        await using var idp = await TestIdentityProvider.StartAsync();
        var builder = AppHost.CreateBuilder();

        // Keys registered before the JWT resolver: the order does not matter.
        builder.Services.AddFloodgateApiKeys(o => o.Header = "X-API-Key");
        builder.Services.AddFloodgateJwtIdentity(o =>
        {
            o.Authority = idp.Authority;
            o.RequireHttpsMetadata = false;
            o.Audiences.Add(TestIdentityProvider.DefaultAudience);
        });
        builder.Services.AddFloodgate(o => o.AddPolicy("per-user", Limit.FixedWindow(Rate.Parse("4/h")), RateLimitTier.User));
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/any", () => "any").RequireFloodgate("per-user");
        app.MapGet("/keys-only", () => "keys").RequireFloodgate("per-user").AcceptCredentials(CredentialKinds.ApiKey);
        await using var host = await AppHost.StartAsync(app);

        var store = app.Services.GetRequiredService<IApiKeyStore>();
        var id = ApiKeySecret.NewId();
        var (key, hash) = ApiKeySecret.NewKey(ApiKeySecret.DefaultPrefix, id);
        Assert.True(await store.CreateAsync(new ApiKeyRecord(id, hash, "alice", null, null, DateTimeOffset.UtcNow)));
        var jwt = idp.CreateToken(subject: "alice");

        void Token(HttpRequestMessage r, string token) => r.Headers.Authorization = new("Bearer", token);
        Assert.Equal(200, await host.StatusAsync("/any", setup: r => Token(r, jwt)));
        Assert.Equal(200, await host.StatusAsync("/any", setup: r => Token(r, key)));
        Assert.Equal(200, await host.StatusAsync("/keys-only", setup: r => r.Headers.Add("X-API-Key", key)));
        Assert.Equal(401, await host.StatusAsync("/keys-only", setup: r => Token(r, jwt)));
        Assert.Equal(200, await host.StatusAsync("/any", setup: r => Token(r, jwt)));
        Assert.Equal(429, await host.StatusAsync("/any", setup: r => Token(r, key)));
        Assert.Equal(429, await host.StatusAsync("/any", setup: r => Token(r, jwt)));
        Assert.Equal(401, await host.StatusAsync("/any", setup: r => Token(r, "fg_live_aaaaaaaaaaaa_" + key[^32..])));
    }

    private ApiKeyIdentityResolver Resolver(ApiKeyIdentityOptions options) => new(_store, options, _time);

    private async Task<(string Key, string Id)> CreateAsync(string subject, string? account = null, string? plan = null, TimeSpan? ttl = null)
    {
        var id = ApiKeySecret.NewId();
        var (key, hash) = ApiKeySecret.NewKey(ApiKeySecret.DefaultPrefix, id);
        Assert.True(await _store.CreateAsync(new ApiKeyRecord(id, hash, subject, account, plan, _time.GetUtcNow(), _time.GetUtcNow() + ttl)));
        return (key, id);
    }

    private static DefaultHttpContext Bearer(string token)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = "Bearer " + token;
        return context;
    }

    private static DefaultHttpContext WithEndpoint(DefaultHttpContext context, CredentialKinds kinds)
    {
        context.SetEndpoint(new Endpoint(null, new EndpointMetadataCollection(new AcceptCredentialsMetadata(kinds)), "test"));
        return context;
    }

    /// <summary>A JWT resolver stand-in that names every request it is asked about <paramref name="subject"/>.</summary>
    private sealed class FixedResolver(string subject) : IIdentityResolver
    {
        public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken) =>
            new(IdentityResult.Valid(subject, null, new System.Security.Claims.ClaimsIdentity("test")));
    }
}
