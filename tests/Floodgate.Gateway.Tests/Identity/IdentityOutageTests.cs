using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Tests;

/// <summary>Reloads of the identity settings while the identity provider is down, against a real provider that is stopped.</summary>
public sealed class IdentityOutageTests
{
    [Fact]
    public async Task A_reload_that_keeps_the_key_source_keeps_its_keys_through_a_provider_outage()
    {
        var idp = await TestIdentityProvider.StartAsync();
        var stopped = false;
        try
        {
            using var logs = new FakeLoggerProvider();
            await using var gate = await TestGateway.StartAsync(PolicyTrusting(idp.Authority, "30s"), logs: logs);
            var now = gate.Time.GetUtcNow();
            var token = idp.CreateToken(now: now);
            using (var before = await gate.GetAsync("/a", token))
            {
                Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            }

            await idp.DisposeAsync();
            stopped = true;

            // Only the clock skew changes: the keys fetched before the outage stay in force under the new settings.
            await gate.WritePolicyAsync(PolicyTrusting(idp.Authority, "10s"));
            Assert.Empty(gate.Host.Reload());
            using (var cached = await gate.GetAsync("/a", token))
            {
                Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
            }

            using (var fresh = await gate.GetAsync("/a", idp.CreateToken(subject: "bob", now: now)))
            {
                Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
            }

            var readiness = await gate.ReadinessAsync();
            Assert.Equal("ready", readiness.GetProperty("status").GetString());
            Assert.StartsWith($"keys from {idp.Authority}/.well-known/openid-configuration fetched at ", readiness.GetProperty("identity_status").GetString(), StringComparison.Ordinal);
            Assert.Empty(logs.Collector.AtLeast(LogLevel.Warning));

            // A token naming a key the provider published since makes the kept source try to refresh: that fails, is
            // logged once at Error in our words, and the keys in hand stay in force.
            gate.Time.Advance(TimeSpan.FromSeconds(31));
            using (var rotated = await gate.GetAsync("/a", idp.CreateToken(idp.Rotate(), "carol", now)))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, rotated.StatusCode);
            }

            var address = idp.Authority + "/.well-known/openid-configuration";
            var line = Assert.Single(logs.Collector.AtLeast(LogLevel.Warning));
            Assert.Equal(LogLevel.Error, line.Level);
            Assert.Equal("Floodgate.AspNetCore.Identity.JwtIdentityResolver", line.Category);
            Assert.Null(line.Exception);
            Assert.StartsWith($"Refreshing the signing keys from {address} failed: {address} cannot be reached: Connection refused", line.Message, StringComparison.Ordinal);
            Assert.EndsWith($"stay in force; the next attempt is at {Utc(gate.Time.GetUtcNow() + TimeSpan.FromSeconds(30))}.", line.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(logs.Collector.GetSnapshot(), l => l.Message.Contains("IDX", StringComparison.Ordinal) || l.Message.Contains("0001", StringComparison.Ordinal));

            readiness = await gate.ReadinessAsync();
            Assert.Equal("ready", readiness.GetProperty("status").GetString());
            Assert.Contains("stay in force; refreshing them failed at ", readiness.GetProperty("identity_status").GetString(), StringComparison.Ordinal);
            using (var still = await gate.GetAsync("/a", idp.CreateToken(subject: "dave", now: now)))
            {
                Assert.Equal(HttpStatusCode.OK, still.StatusCode);
            }
        }
        finally
        {
            if (!stopped)
            {
                await idp.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_reload_to_a_key_source_whose_keys_cannot_be_fetched_is_refused_and_the_settings_in_force_stay()
    {
        await using var idp = await TestIdentityProvider.StartAsync();
        using var logs = new FakeLoggerProvider();
        await using var gate = await TestGateway.StartAsync(PolicyTrusting(idp.Authority, "30s"), logs: logs);
        var token = idp.CreateToken(now: gate.Time.GetUtcNow());
        using (var before = await gate.GetAsync("/a", token))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        var version = gate.Host.Policy.Version;
        var dead = $"http://127.0.0.1:{UnusedPort()}";
        await gate.WritePolicyAsync(PolicyTrusting(dead, "30s"));

        var error = Assert.Single(gate.Host.Reload());
        Assert.Equal(gate.PolicyPath, error.File);
        Assert.Equal("identity.jwt.authority", error.Field);
        Assert.Contains(dead + "/.well-known/openid-configuration", error.Message, StringComparison.Ordinal);
        Assert.Contains("the identity settings in force stay", error.Message, StringComparison.Ordinal);
        Assert.Equal(version, gate.Host.Policy.Version);

        // The old settings, keys and all, still answer; a token of the old provider not seen before too.
        using (var after = await gate.GetAsync("/a", idp.CreateToken(subject: "bob", now: gate.Time.GetUtcNow())))
        {
            Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        }

        var readiness = await gate.ReadinessAsync();
        Assert.Equal("ready", readiness.GetProperty("status").GetString());
        Assert.Contains(dead, readiness.GetProperty("last_reload_error").GetString(), StringComparison.Ordinal);
        Assert.StartsWith($"keys from {idp.Authority}/", readiness.GetProperty("identity_status").GetString(), StringComparison.Ordinal);

        // The new source's failure is logged in our words, and so is the refusal; neither with a stack trace.
        Assert.Contains(logs.Collector.AtLeast(LogLevel.Error), l => l.Message.StartsWith($"Fetching the signing keys from {dead}/.well-known/openid-configuration failed: ", StringComparison.Ordinal));
        Assert.Contains(logs.Collector.AtLeast(LogLevel.Error), l => l.Message.StartsWith("Policy reload refused", StringComparison.Ordinal) && l.Message.Contains(dead, StringComparison.Ordinal));
        Assert.All(logs.Collector.GetSnapshot(), l => Assert.Null(l.Exception));
    }

    [Fact]
    public async Task Readiness_reports_an_identity_provider_whose_keys_cannot_be_fetched()
    {
        var dead = $"http://127.0.0.1:{UnusedPort()}";
        await using var gate = await TestGateway.StartAsync(PolicyTrusting(dead, "30s"));

        using var response = await gate.Admin.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var readiness = await gate.ReadinessAsync();
        Assert.Equal("not ready", readiness.GetProperty("status").GetString());
        var status = readiness.GetProperty("identity_status").GetString()!;
        Assert.Contains(dead + "/.well-known/openid-configuration", status, StringComparison.Ordinal);
        Assert.Contains("cannot be fetched", status, StringComparison.Ordinal);
    }

    private static string Utc(DateTimeOffset time) => time.ToString("u", CultureInfo.InvariantCulture);

    /// <summary>A policy whose identity trusts <paramref name="authority"/>, with <paramref name="clockSkew"/>.</summary>
    private static string PolicyTrusting(string authority, string clockSkew) => $$"""
        upstream: {upstream}
        identity:
          jwt:
            authority: {{authority}}
            require_https: false
            audiences: [{{TestIdentityProvider.DefaultAudience}}]
            clock_skew: {{clockSkew}}
          anonymous: reject
        """;

    /// <summary>A loopback port nothing listens on: bound and released, so connecting to it is refused.</summary>
    private static int UnusedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
