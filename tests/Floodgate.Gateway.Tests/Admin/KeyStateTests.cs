using System.Net;
using System.Text.Json;
using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests;

/// <summary>Reading and resetting one key's state through the admin API and CLI, on the memory store and redis-server.</summary>
public sealed class KeyStateTests
{
    private static string Policy(AdminTokens token, RedisServer? redis) => $$"""
        upstream: {upstream}
        {identity}
        {{(redis is null ? string.Empty : $"store: {{ kind: redis, configuration: \"{redis.Configuration}\", on_failure: closed, timeout: 2s }}")}}
        edge:
          - name: per-ip
            limit: 100/h
            algorithm: fixed_window
        user:
          - name: per-user
            limit: 5/h
            algorithm: fixed_window
          - name: per-tenant
            limit: 50/h
            key: [header:X-Tenant]
        {{token.Section}}
        """;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_keys_state_is_read_without_consuming_and_reset_to_a_new_keys(bool onRedis)
    {
        using var redis = onRedis ? RedisServer.Start() : null;
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync(Policy(token, redis));
        using var admin = token.Client(gateway.Host.AdminAddress!);
        var alice = gateway.Identity.CreateToken(subject: "alice");
        Assert.Equal(3, (await gateway.StatusesAsync(3, "/x", alice)).Count(s => s == 200));

        for (var read = 0; read < 2; read++)
        {
            var state = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/rules/per-user/state?subject=alice")).RootElement;
            Assert.Equal("per-user", state.GetProperty("rule").GetString());
            Assert.Equal("fixed_window", state.GetProperty("algorithm").GetString());
            Assert.Equal(5, state.GetProperty("limit").GetInt64());
            Assert.Equal(3, state.GetProperty("used").GetInt64());
            Assert.Equal(2, state.GetProperty("remaining").GetInt64());
        }

        var ip = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/rules/per-ip/state?ip=127.0.0.1")).RootElement;
        Assert.Equal(3, ip.GetProperty("used").GetInt64());

        using (var reset = await admin.DeleteAsync("/admin/v1/rules/per-user/state?subject=alice"))
        {
            Assert.Equal(HttpStatusCode.NoContent, reset.StatusCode);
        }

        var after = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/rules/per-user/state?subject=alice")).RootElement;
        Assert.Equal(0, after.GetProperty("used").GetInt64());
        Assert.Equal(5, (await gateway.StatusesAsync(6, "/x", alice)).Count(s => s == 200));

        // The other keys were not touched: the client IP's count went on.
        ip = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/rules/per-ip/state?ip=127.0.0.1")).RootElement;
        Assert.Equal(9, ip.GetProperty("used").GetInt64());

        using (var untouched = await admin.DeleteAsync("/admin/v1/rules/per-user/state?subject=nobody"))
        {
            Assert.Equal(HttpStatusCode.NotFound, untouched.StatusCode);
        }
    }

    [Fact]
    public async Task A_key_is_named_by_every_part_it_reads_and_bad_input_names_the_field()
    {
        using var token = new AdminTokens();
        await using var gateway = await TestGateway.StartAsync(Policy(token, null));
        using var admin = token.Client(gateway.Host.AdminAddress!);
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/x"))
        {
            request.Headers.Authorization = new("Bearer", gateway.Identity.CreateToken(subject: "alice"));
            request.Headers.Add("X-Tenant", "acme");
            using var response = await gateway.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var tenant = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/rules/per-tenant/state?header.X-Tenant=acme")).RootElement;
        Assert.Equal(1, tenant.GetProperty("used").GetInt64());

        var cases = new (string Query, string Field)[]
        {
            ("/admin/v1/rules/no-such-rule/state?subject=alice", "rule"),
            ("/admin/v1/rules/per-user/state", "key"),
            ("/admin/v1/rules/per-tenant/state?subject=alice", "key"),
            ("/admin/v1/rules/per-ip/state?ip=not-an-ip", "ip"),
            ("/admin/v1/rules/per-user/state?subject=" + new string('s', 300), "subject"),
        };
        foreach (var (query, field) in cases)
        {
            using var response = await admin.GetAsync(query);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{query}: {problem}");
        }

        // The CLI names a key the same way.
        string[] Common(params string[] args) => ["admin", .. args, "--address", gateway.Host.AdminAddress!.ToString(), "--token-file", token.File];
        var (code, output, errors) = await RunAsync(Common("state", "get", "per-tenant", "--header", "X-Tenant=acme"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("per-tenant (gcra 50/h): used 1 of 50, 49 remaining", output.Trim(), StringComparison.Ordinal);
        (code, output, errors) = await RunAsync(Common("state", "reset", "per-tenant", "--header", "X-Tenant=acme"));
        Assert.True(code == 0, errors);
        Assert.Equal("reset the key of per-tenant", output.Trim());
        (code, output, errors) = await RunAsync(Common("state", "get", "per-tenant", "--header", "X-Tenant=acme", "--json"));
        Assert.True(code == 0, errors);
        Assert.Equal(0, JsonDocument.Parse(output).RootElement.GetProperty("used").GetInt64());
        (code, _, errors) = await RunAsync(Common("state", "get", "per-user"));
        Assert.Equal(1, code);
        Assert.Equal("400: key: the rule 'per-user' is keyed by subject; give each.", errors.Trim());
    }

    private static async Task<(int Code, string Output, string Errors)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await GatewayCli.Build(output, errors).Parse(args).InvokeAsync();
        return (code, output.ToString(), errors.ToString());
    }
}
