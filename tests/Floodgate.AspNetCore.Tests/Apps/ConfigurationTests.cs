using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Floodgate.AspNetCore.Tests.Apps;

/// <summary>Floodgate bound from appsettings.json: validated at start naming the path, reloaded keeping the last good settings.</summary>
public sealed class ConfigurationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("floodgate-config-").FullName;

    private string SettingsFile => Path.Combine(_directory, "appsettings.json");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Theory]
    [InlineData("""{ "Policies": { "orders": { "Limit": "300/minn" } } }""", "Floodgate:Policies:orders:Limit: ")]
    [InlineData("""{ "Policies": { "orders": { "Limit": "3/min", "Tier": "Users" } } }""", "Floodgate:Policies:orders:Tier: 'Users' is not one of Edge, User, Service, Global.")]
    [InlineData("""{ "Policies": { "orders": { "Limit": "3/min", "Burts": 5 } } }""", "Floodgate:Policies:orders:Burts: unknown field")]
    [InlineData("""{ "Policies": { "orders": { "Limit": "3/min", "Key": [ "headr:X-Client" ] } } }""", "Floodgate:Policies:orders:Key: ")]
    [InlineData("""{ "Anonymous": "Deny" }""", "Floodgate:Anonymous: 'Deny' is not one of Allow, Reject.")]
    [InlineData("""{ "RejectionStatusCodes": { "User": 200 } }""", "Floodgate:RejectionStatusCodes:User: '200' is not a 4xx or 5xx status code.")]
    [InlineData("""{ "TrustedProxies": [ "10.0.0.0/33" ] }""", "FloodgateOptions.TrustedProxies: ")]
    public async Task A_bad_value_stops_the_start_naming_its_path(string floodgate, string expected)
    {
        await File.WriteAllTextAsync(SettingsFile, $$"""{ "Floodgate": {{floodgate}} }""");
        var app = Build(out _);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => AppHost.StartAsync(app));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policies_bound_from_configuration_limit_their_endpoints()
    {
        await File.WriteAllTextAsync(SettingsFile, """
            { "Floodgate": {
                "Policies": {
                  "orders": { "Limit": "2/min", "Tier": "User", "Key": [ "header:X-Client" ] },
                  "exports": { "Concurrency": 1 } },
                "Headers": { "Legacy": true },
                "RejectionStatusCodes": { "User": 420 } } }
            """);
        await using var host = await AppHost.StartAsync(Build(out _, exports: true));
        void Client(HttpRequestMessage r) => r.Headers.Add("X-Client", "one");
        Assert.Equal(200, await host.StatusAsync("/orders", setup: Client));
        using (var response = await host.Client.SendAsync(Request("/orders", Client)))
        {
            Assert.Equal("0", response.Headers.GetValues("X-RateLimit-Remaining").Single());
        }

        Assert.Equal(420, await host.StatusAsync("/orders", setup: Client));
    }

    [Fact]
    public async Task A_good_change_applies_and_a_bad_one_is_refused_keeping_the_settings_in_force()
    {
        await File.WriteAllTextAsync(SettingsFile, """{ "Floodgate": { "Policies": { "orders": { "Limit": "2/min" } } } }""");
        await using var host = await AppHost.StartAsync(Build(out var logs));
        var configuration = (IConfigurationRoot)host.App.Configuration;
        Assert.Equal(200, await host.StatusAsync("/orders"));
        Assert.Equal(200, await host.StatusAsync("/orders"));
        Assert.Equal(503, await host.StatusAsync("/orders"));

        // A bad change: refused with its path, and the 2/min policy stays in force.
        await File.WriteAllTextAsync(SettingsFile, """{ "Floodgate": { "Policies": { "orders": { "Limit": "lots" } } } }""");
        configuration.Reload();
        var refused = Assert.Single(logs.GetSnapshot(), r => r.Level == LogLevel.Error);
        Assert.Contains("refused the changed configuration", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Floodgate:Policies:orders:Limit", refused.Message, StringComparison.Ordinal);
        Assert.Equal(503, await host.StatusAsync("/orders"));

        // Dropping a policy an endpoint requires would leave it unlimited: refused too.
        await File.WriteAllTextAsync(SettingsFile, """{ "Floodgate": { "Policies": { } } }""");
        configuration.Reload();
        Assert.Equal(2, logs.GetSnapshot().Count(r => r.Level == LogLevel.Error));
        Assert.Equal(503, await host.StatusAsync("/orders"));

        // A good change applies to the next request: the policy, its budget spent, now only observes.
        await File.WriteAllTextAsync(SettingsFile, """{ "Floodgate": { "Policies": { "orders": { "Limit": "2/min", "Mode": "Shadow" } } } }""");
        configuration.Reload();
        Assert.Equal(200, await host.StatusAsync("/orders"));
        Assert.Equal(2, logs.GetSnapshot().Count(r => r.Level == LogLevel.Error));
    }

    private static HttpRequestMessage Request(string path, Action<HttpRequestMessage> setup)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        setup(request);
        return request;
    }

    private WebApplication Build(out FakeLogCollector logs, bool exports = false)
    {
        var builder = AppHost.CreateBuilder();
        builder.Configuration.AddJsonFile(SettingsFile, optional: false, reloadOnChange: false);
        var collector = new FakeLogCollector();
        builder.Logging.AddProvider(new FakeLoggerProvider(collector));
        builder.Services.AddFloodgate(builder.Configuration.GetSection("Floodgate"));
        logs = collector;
        var app = builder.Build();
        app.UseFloodgate();
        app.MapGet("/orders", () => "orders").RequireFloodgate("orders");
        if (exports)
        {
            app.MapGet("/exports", () => "exports").RequireFloodgate("exports");
        }

        return app;
    }
}
