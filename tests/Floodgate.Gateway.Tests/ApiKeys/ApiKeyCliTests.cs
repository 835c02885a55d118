using System.Text.Json;
using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests;

/// <summary><c>floodgate admin key …</c> against a running gateway.</summary>
public sealed class ApiKeyCliTests
{
    [Fact]
    public async Task The_admin_cli_creates_lists_reads_rotates_and_revokes_keys()
    {
        using var token = new AdminTokens("cli");
        await using var gateway = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            api_keys: {}
            default_plan: free
            plans:
              free: { per_user: 3/h }
              pro: { per_user: 10/h }
            user:
              - name: per-user
                limit: plan.per_user
                algorithm: fixed_window
            {{token.Section}}
            """);
        string[] Common(params string[] args) => ["admin", "key", .. args, "--address", gateway.Host.AdminAddress!.ToString(), "--token-file", token.File];

        var (code, output, errors) = await RunAsync(Common("create", "alice", "--plan", "pro", "--account", "acme", "--ttl", "30d"));
        Assert.True(code == 0, errors);
        var lines = output.Trim().Split(Environment.NewLine);
        var key = lines[0];
        var id = key["fg_live_".Length..][..12];
        Assert.StartsWith($"{id}: subject alice, account acme, plan pro, created ", lines[1], StringComparison.Ordinal);
        Assert.Contains(", expires ", lines[1], StringComparison.Ordinal);
        Assert.Equal("(shown this once: store it now)", lines[2]);
        Assert.Equal(10, (await gateway.StatusesAsync(11, "/x", key)).Count(s => s == 200));

        (code, output, errors) = await RunAsync(Common("create", "bob", "--json"));
        Assert.True(code == 0, errors);
        var bob = JsonDocument.Parse(output).RootElement;
        Assert.Equal("bob", bob.GetProperty("apiKey").GetProperty("subject").GetString());
        var bobId = bob.GetProperty("apiKey").GetProperty("id").GetString()!;

        (code, output, errors) = await RunAsync(Common("list", "--subject", "alice"));
        Assert.True(code == 0, errors);
        Assert.StartsWith($"{id}: subject alice, account acme, plan pro", output.Trim(), StringComparison.Ordinal);
        Assert.Contains(", last used ", output, StringComparison.Ordinal);
        Assert.DoesNotContain(key, output, StringComparison.Ordinal);

        (code, output, errors) = await RunAsync(Common("list", "--limit", "1"));
        Assert.True(code == 0, errors);
        Assert.Equal($"(more: --after {(string.CompareOrdinal(id, bobId) < 0 ? id : bobId)})", output.Trim().Split(Environment.NewLine)[^1]);

        (code, output, errors) = await RunAsync(Common("rotate", id, "--grace", "0s"));
        Assert.True(code == 0, errors);
        var newKey = output.Trim().Split(Environment.NewLine)[0];
        Assert.NotEqual(key, newKey);
        Assert.Equal(new[] { 401 }, await gateway.StatusesAsync(1, "/x", key));
        Assert.Equal(new[] { 429 }, await gateway.StatusesAsync(1, "/x", newKey)); // alice's counters are hers, not the key's

        (code, output, errors) = await RunAsync(Common("get", bobId));
        Assert.True(code == 0, errors);
        Assert.StartsWith($"{bobId}: subject bob, plan (default)", output.Trim(), StringComparison.Ordinal);

        (code, output, errors) = await RunAsync(Common("revoke", bobId));
        Assert.True(code == 0, errors);
        Assert.Equal($"revoked {bobId}", output.Trim());
        (code, _, errors) = await RunAsync(Common("get", bobId));
        Assert.Equal(1, code);
        Assert.Equal($"404: There is no API key '{bobId}'.", errors.Trim());

        (code, _, errors) = await RunAsync(Common("create", "carol", "--plan", "platinum"));
        Assert.Equal(1, code);
        Assert.StartsWith("400: plan: 'platinum' is not a plan", errors.Trim(), StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output, string Errors)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await GatewayCli.Build(output, errors).Parse(args).InvokeAsync();
        return (code, output.ToString(), errors.ToString());
    }
}
