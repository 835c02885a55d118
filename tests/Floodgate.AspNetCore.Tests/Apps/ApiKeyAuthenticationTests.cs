using System.Net;
using System.Net.Http.Headers;
using Floodgate.ApiKeys;
using Floodgate.AspNetCore.Authentication;
using Floodgate.AspNetCore.Identity;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>
/// The FloodgateJwt scheme with API keys registered: HttpContext.User is the key's identity (subject, plan, account) for a
/// key as a Bearer token or in the key header, where the endpoint accepts keys, and the JWT's for a token.
/// </summary>
public sealed class ApiKeyAuthenticationTests : IAsyncLifetime
{
    private TestIdentityProvider _idp = null!;

    public async Task InitializeAsync() => _idp = await TestIdentityProvider.StartAsync();

    public async Task DisposeAsync() => await _idp.DisposeAsync();

    [Fact]
    public async Task An_api_key_sets_HttpContext_User_as_a_token_does_and_an_unknown_key_is_challenged()
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddAuthentication(FloodgateJwtDefaults.AuthenticationScheme).AddFloodgateJwt(jwt =>
        {
            jwt.Authority = _idp.Authority;
            jwt.RequireHttpsMetadata = false;
            jwt.Audiences.Add(TestIdentityProvider.DefaultAudience);
        });
        builder.Services.AddFloodgateApiKeys(o => o.Header = "X-API-Key");
        builder.Services.AddAuthorization();
        builder.Services.AddFloodgate(o => o.AddPolicy("per-user", Limit.FixedWindow(Rate.Parse("5/h")), RateLimitTier.User));
        var app = builder.Build();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseFloodgate();
        static string Me(HttpContext context) =>
            $"{context.User.FindFirst("sub")?.Value} {context.User.FindFirst("plan")?.Value ?? "-"} {context.User.FindFirst("account")?.Value ?? "-"} {context.User.Identity!.AuthenticationType}";
        app.MapGet("/me", Me).RequireAuthorization().RequireFloodgate("per-user");
        app.MapGet("/jwt-only", Me).RequireAuthorization().RequireFloodgate("per-user").AcceptCredentials(CredentialKinds.Jwt);
        await using var host = await AppHost.StartAsync(app);

        var store = app.Services.GetRequiredService<IApiKeyStore>();
        var id = ApiKeySecret.NewId();
        var (key, hash) = ApiKeySecret.NewKey(ApiKeySecret.DefaultPrefix, id);
        Assert.True(await store.CreateAsync(new ApiKeyRecord(id, hash, "alice", "acme", "pro", DateTimeOffset.UtcNow)));
        var jwt = _idp.CreateToken(subject: "alice");

        var apiKey = $"alice pro acme {ApiKeyIdentityResolver.AuthenticationType}";
        Assert.Equal(apiKey, await GetAsync(host, "/me", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key)));
        Assert.Equal(apiKey, await GetAsync(host, "/me", r => r.Headers.Add("X-API-Key", key)));
        Assert.StartsWith("alice - - ", await GetAsync(host, "/me", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", jwt)), StringComparison.Ordinal);

        // The key and the token are one subject: one budget of five, shared, and the fifth request was the last.
        Assert.Equal(200, await host.StatusAsync("/me", setup: r => r.Headers.Add("X-API-Key", key)));
        Assert.Equal(200, await host.StatusAsync("/me", setup: r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", jwt)));
        Assert.Equal(429, await host.StatusAsync("/me", setup: r => r.Headers.Add("X-API-Key", key)));

        // An unknown key, no credentials, and a key where only JWTs are accepted: 401.
        Assert.Equal(401, await host.StatusAsync("/me", setup: r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "fg_live_aaaaaaaaaaaa_" + key[^32..])));
        Assert.Equal(401, await host.StatusAsync("/me", setup: r => r.Headers.Add("X-API-Key", "fg_live_aaaaaaaaaaaa_" + key[^32..])));
        Assert.Equal(401, await host.StatusAsync("/me"));
        Assert.Equal(401, await host.StatusAsync("/jwt-only", setup: r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key)));
    }

    private static async Task<string> GetAsync(AppHost host, string path, Action<HttpRequestMessage> setup)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        setup(request);
        using var response = await host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }
}
