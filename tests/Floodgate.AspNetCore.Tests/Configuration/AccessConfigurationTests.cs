using System.Net;
using Floodgate.AspNetCore.Configuration;
using Floodgate.AspNetCore.RateLimitIds;
using Floodgate.Rules;
using Floodgate.Stores;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Floodgate.AspNetCore.Tests.Configuration;

/// <summary>The bypass and deny lists and the rate-limit id bound from IConfiguration, secrets from files and the environment.</summary>
public sealed class AccessConfigurationTests : IDisposable
{
    private static readonly string HeaderSecret = "bypass-" + new string('s', 20);
    private static readonly string KeySecret = "k1-" + new string('k', 40);
    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-access-config-").FullName;
    private readonly string _env = "FLOODGATE_TEST_RLID_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

    public AccessConfigurationTests()
    {
        File.WriteAllText(Path.Combine(_directory, "bypass"), "old-secret-0123456789\n" + HeaderSecret + "\n\n");
        Environment.SetEnvironmentVariable(_env, KeySecret);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(_env, null);
        Directory.Delete(_directory, recursive: true);
    }

    private Dictionary<string, string?> Values() => new()
    {
        ["Policies:per-ip:Limit"] = "2/min",
        ["Policies:per-ip:Tier"] = "Edge",
        ["TrustedProxies:0"] = "127.0.0.1/32",
        ["Access:DeniedAddresses:0"] = "203.0.113.9",
        ["Access:DeniedAddresses:1"] = "198.51.100.0/24",
        ["Access:DeniedSubjects:0"] = "mallory",
        ["Access:Bypass:0:Name"] = "our-services",
        ["Access:Bypass:0:Tiers:0"] = "Edge",
        ["Access:Bypass:0:Networks:0"] = "10.20.0.0/16",
        ["Access:Bypass:1:Name"] = "batch",
        ["Access:Bypass:1:Header:Name"] = "X-Floodgate-Bypass",
        ["Access:Bypass:1:Header:File"] = Path.Combine(_directory, "bypass"),
        ["Access:Bypass:2:Name"] = "internal",
        ["Access:Bypass:2:Tiers:0"] = "user",
        ["Access:Bypass:2:Claims:azp:0"] = "billing",
        ["Access:Bypass:2:Claims:azp:1"] = "reports",
        ["RateLimitId:Keys:0:Id"] = "k1",
        ["RateLimitId:Keys:0:Env"] = _env,
        ["RateLimitId:Claims:0"] = "account",
        ["RateLimitId:Endpoints:0"] = "orders",
        ["RateLimitId:IssuePath"] = "/.well-known/ratelimit-id",
        ["RateLimitId:Cookie"] = "fg_rlid",
        ["RateLimitId:OnInvalid"] = "unauthorized",
    };

    private static FloodgateOptions Read(Dictionary<string, string?> values) => ConfiguredOptions.Read(values);

    [Fact]
    public void Every_field_is_read_into_the_options_with_secrets_from_a_file_and_the_environment()
    {
        var options = Read(Values());
        Assert.Empty(options.ConfigurationProblems);
        Assert.Equal(["203.0.113.9", "198.51.100.0/24"], options.Access.DeniedAddresses);
        Assert.Equal(["mallory"], options.Access.DeniedSubjects);
        Assert.Equal(["our-services", "batch", "internal"], options.Access.Bypass.Select(b => b.Name));
        Assert.Equal([RateLimitTier.Edge], options.Access.Bypass[0].Tiers);
        Assert.Equal(["10.20.0.0/16"], options.Access.Bypass[0].Networks);
        Assert.Equal("X-Floodgate-Bypass", options.Access.Bypass[1].HeaderName);
        Assert.Equal(["old-secret-0123456789", HeaderSecret], options.Access.Bypass[1].HeaderSecrets);
        Assert.Equal([RateLimitTier.User], options.Access.Bypass[2].Tiers);
        Assert.Equal(["billing", "reports"], options.Access.Bypass[2].Claims["azp"]);

        var ids = options.RateLimitId!;
        Assert.Equal("k1", Assert.Single(ids.Keys).KeyId);
        Assert.Equal(KeySecret, System.Text.Encoding.UTF8.GetString(ids.Keys[0].Secret));
        Assert.Equal(["account"], ids.Claims);
        Assert.Equal(["orders"], ids.EndpointClasses);
        Assert.Equal("/.well-known/ratelimit-id", ids.IssuePath?.Value);
        Assert.Equal("fg_rlid", ids.CookieName);
        Assert.Equal(InvalidRateLimitIdAction.Unauthorized, ids.OnInvalid);
        options.Validate();
    }

    [Theory]
    [InlineData("Access:Bypass:0:Header:Secret", "hunter2-hunter2-hunter2", "Access:Bypass:0:Header:Secret: unknown field")]
    [InlineData("Access:Bypass:0:Tiers:0", "Edges", "Access:Bypass:0:Tiers: 'Edges' is not a tier")]
    [InlineData("Access:Denied", "x", "Access:Denied: unknown field")]
    [InlineData("RateLimitId:OnInvalid", "maybe", "RateLimitId:OnInvalid: 'maybe' is not one of Ignore, Unauthorized, TooManyRequests")]
    [InlineData("RateLimitId:Keys:0:File", "/run/secrets/also-a-file", "RateLimitId:Keys:0: give the secret's File or its Env variable (one of them)")]
    [InlineData("RateLimitId:IssuePath", "ratelimit-id", "RateLimitId:IssuePath: 'ratelimit-id' is not a path")]
    public void A_bad_value_is_a_problem_naming_its_path(string key, string value, string expected)
    {
        var values = Values();
        values["Access:Bypass:0:Header:Name"] = key.StartsWith("Access:Bypass:0:Header", StringComparison.Ordinal) ? "X-Bypass" : null;
        values[key] = value;
        var problems = Read(values).ConfigurationProblems;
        Assert.Contains(problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_missing_secret_file_or_variable_is_a_problem()
    {
        var values = Values();
        values["Access:Bypass:1:Header:File"] = Path.Combine(_directory, "absent");
        values["RateLimitId:Keys:0:Env"] = "FLOODGATE_TEST_UNSET_" + Guid.NewGuid().ToString("N");
        var problems = Read(values).ConfigurationProblems;
        Assert.Contains(problems, p => p.StartsWith("Access:Bypass:1:Header:File: the secret file", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("RateLimitId:Keys:0:Env: the environment variable", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Bound_lists_and_ids_are_enforced_by_the_middleware_on_kestrel()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        builder.Configuration.AddInMemoryCollection(Values().Where(v => v.Value is not null).ToDictionary(v => "Floodgate:" + v.Key, v => v.Value));
        builder.Services.AddSingleton<IRateLimitStore>(new MemoryStore());
        builder.Services.AddFloodgate(builder.Configuration.GetSection("Floodgate"));
        await using var app = builder.Build();
        app.UseRouting();
        app.UseFloodgate();
        app.MapGet("/a", () => "ok").RequireFloodgate("per-ip");
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };

        async Task<HttpStatusCode> GetAsync(string from, string? bypass = null, string? id = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/a");
            request.Headers.Add("X-Forwarded-For", from);
            if (bypass is not null)
            {
                request.Headers.Add("X-Floodgate-Bypass", bypass);
            }

            if (id is not null)
            {
                request.Headers.TryAddWithoutValidation(RateLimitId.DefaultHeader, id);
            }

            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Forbidden, await GetAsync("203.0.113.9"));
        Assert.Equal(HttpStatusCode.Forbidden, await GetAsync("198.51.100.77"));

        // The edge's 2/min holds for a client, but not for our services' network nor for the bypass header's secret.
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], [await GetAsync("192.0.2.1"), await GetAsync("192.0.2.1"), await GetAsync("192.0.2.1")]);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await GetAsync("10.20.3.4"));
            Assert.Equal(HttpStatusCode.OK, await GetAsync("192.0.2.2", bypass: HeaderSecret));
        }

        // The bypassed requests were never counted; a wrong secret is any client's request.
        var wrong = "a-wrong-secret-0123456789";
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], [await GetAsync("192.0.2.2", wrong), await GetAsync("192.0.2.2", wrong), await GetAsync("192.0.2.2", wrong)]);

        // The id's key came from the environment: a forged id is answered 401 (OnInvalid: unauthorized), a right one passes.
        var right = RateLimitId.Create(System.Text.Encoding.UTF8.GetBytes(KeySecret), "k1", "alice", "acme");
        var forged = RateLimitId.Create(System.Text.Encoding.UTF8.GetBytes("k1-" + new string('x', 40)), "k1", "alice", "acme");
        Assert.Equal(HttpStatusCode.Unauthorized, await GetAsync("192.0.2.3", id: forged));
        Assert.Equal(HttpStatusCode.OK, await GetAsync("192.0.2.3", id: right));
        await app.StopAsync();
    }
}
