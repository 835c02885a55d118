using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Text;
using System.Text.Encodings.Web;
using Floodgate.AspNetCore.Authentication;
using Floodgate.Limits;
using Floodgate.Rules;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>
/// Floodgate in ASP.NET Core authentication: the FloodgateJwt scheme sets HttpContext.User from the token Floodgate
/// validates (once), and Basic and API-key schemes beside it keep their requests, which Floodgate keys on their users.
/// </summary>
public sealed class AuthenticationTests : IAsyncLifetime
{
    private TestIdentityProvider _idp = null!;

    public async Task InitializeAsync() => _idp = await TestIdentityProvider.StartAsync();

    public async Task DisposeAsync() => await _idp.DisposeAsync();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HttpContext_User_is_the_principal_Floodgate_validated_once_and_keys_on(bool authenticationFirst)
    {
        await using var host = await StartAsync(authenticationFirst);
        using var validations = new MetricCollector<long>(host.App.Services.GetRequiredService<IMeterFactory>(), "Floodgate", "floodgate.identity.validations");
        var alice = _idp.CreateToken(subject: "alice");
        Assert.Equal("alice Bearer", await GetAsync(host, "/me", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", alice)));
        Assert.Equal("alice Bearer", await GetAsync(host, "/me", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", alice)));
        Assert.Equal(429, await host.StatusAsync("/me", setup: r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", alice)));
        Assert.Equal("bob Bearer", await GetAsync(host, "/me", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _idp.CreateToken(subject: "bob"))));

        // One resolution per request, whichever of the middleware and the handler runs first.
        Assert.Equal(4, validations.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Basic_and_API_key_users_are_admitted_and_limited_as_themselves_never_asked_for_a_Bearer_token(bool authenticationFirst)
    {
        await using var host = await StartAsync(authenticationFirst);
        void Basic(HttpRequestMessage r, string user) => r.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":secret")));
        void ApiKey(HttpRequestMessage r, string key) => r.Headers.Add("X-Api-Key", key);

        Assert.Equal("carol Basic", await GetAsync(host, "/me", r => Basic(r, "carol")));
        Assert.Equal("key-7 ApiKey", await GetAsync(host, "/me", r => ApiKey(r, "key-7")));
        if (authenticationFirst)
        {
            // Keyed on the users authentication established: each has its own budget of two.
            Assert.Equal("carol Basic", await GetAsync(host, "/me", r => Basic(r, "carol")));
            Assert.Equal("key-7 ApiKey", await GetAsync(host, "/me", r => ApiKey(r, "key-7")));
            Assert.Equal(429, await host.StatusAsync("/me", setup: r => Basic(r, "carol")));
            Assert.Equal(429, await host.StatusAsync("/me", setup: r => ApiKey(r, "key-7")));
            Assert.Equal("dave Basic", await GetAsync(host, "/me", r => Basic(r, "dave")));
        }
        else
        {
            // Floodgate ran before authentication had established anyone: it left the Basic credentials to
            // authentication (never a 401 asking for a Bearer token) and keyed both requests on the client IP.
            Assert.Equal(429, await host.StatusAsync("/me", setup: r => Basic(r, "dave")));
        }
    }

    [Fact]
    public async Task A_refused_token_is_challenged_with_its_RFC_6750_error()
    {
        await using var host = await StartAsync(authenticationFirst: true);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/me");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _idp.CreateUnsignedToken());
        using var response = await host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.StartsWith("Bearer error=\"invalid_token\"", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
    }

    private static async Task<string> GetAsync(AppHost host, string path, Action<HttpRequestMessage> setup)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        setup(request);
        using var response = await host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private async Task<AppHost> StartAsync(bool authenticationFirst)
    {
        var builder = AppHost.CreateBuilder();
        builder.Services.AddAuthentication("by-header")
            .AddPolicyScheme("by-header", "Bearer, Basic or API key", o => o.ForwardDefaultSelector = context =>
                context.Request.Headers.Authorization.ToString().StartsWith("Basic ", StringComparison.OrdinalIgnoreCase) ? "Basic"
                : context.Request.Headers.ContainsKey("X-Api-Key") ? "ApiKey"
                : FloodgateJwtDefaults.AuthenticationScheme)
            .AddFloodgateJwt(jwt =>
            {
                jwt.Authority = _idp.Authority;
                jwt.RequireHttpsMetadata = false;
                jwt.Audiences.Add(TestIdentityProvider.DefaultAudience);
            })
            .AddScheme<AuthenticationSchemeOptions, BasicHandler>("Basic", null)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>("ApiKey", null);
        builder.Services.AddAuthorization();
        builder.Services.AddFloodgate(o => o.AddPolicy("per-user", Limit.Gcra(Rate.Parse("2/min")), RateLimitTier.User));
        var app = builder.Build();
        if (authenticationFirst)
        {
            app.UseAuthentication();
            app.UseFloodgate();
        }
        else
        {
            app.UseFloodgate();
            app.UseAuthentication();
        }

        app.UseAuthorization();
        app.MapGet("/me", (HttpContext context) => $"{context.User.FindFirst("sub")?.Value ?? context.User.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? context.User.Identity!.Name} {context.User.Identity!.AuthenticationType}")
            .RequireAuthorization()
            .RequireFloodgate("per-user");
        return await AppHost.StartAsync(app);
    }

    /// <summary>Basic authentication that accepts any user with the password "secret".</summary>
    private sealed class BasicHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var header = Request.Headers.Authorization.ToString();
            if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..])).Split(':', 2);
            return Task.FromResult(pair is [var user, "secret"]
                ? AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, user)], "Basic")), "Basic"))
                : AuthenticateResult.Fail("wrong password"));
        }
    }

    /// <summary>An API key scheme: the key names its owner.</summary>
    private sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync() =>
            Task.FromResult(Request.Headers["X-Api-Key"].ToString() is { Length: > 0 } key
                ? AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, key)], "ApiKey")), "ApiKey"))
                : AuthenticateResult.NoResult());
    }
}
