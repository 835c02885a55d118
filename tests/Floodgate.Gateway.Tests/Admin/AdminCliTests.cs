using System.Text.Json;
using Floodgate.Gateway.Cli;

namespace Floodgate.Gateway.Tests;

/// <summary><c>floodgate admin …</c> against a running gateway.</summary>
public sealed class AdminCliTests
{
    [Fact]
    public async Task The_admin_cli_changes_a_plan_sets_lists_and_deletes_overrides_and_reads_usage()
    {
        using var token = new AdminTokens("cli");
        await using var gateway = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            {identity}
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
        string[] Common(params string[] args) => ["admin", .. args, "--address", gateway.Host.AdminAddress!.ToString(), "--token-file", token.File];

        var (code, output, errors) = await RunAsync(Common("status"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("token cli: policy ", output, StringComparison.Ordinal);

        var alice = gateway.Identity.CreateToken(subject: "alice");
        Assert.Equal(3, (await gateway.StatusesAsync(5, "/x", alice)).Count(s => s == 200));

        (code, output, errors) = await RunAsync(Common("plan", "alice", "pro", "--ttl", "7d"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("alice: plan pro, until ", output, StringComparison.Ordinal);
        Assert.Equal(7, (await gateway.StatusesAsync(10, "/x", alice)).Count(s => s == 200));

        (code, output, errors) = await RunAsync(Common("usage", "alice"));
        Assert.True(code == 0, errors);
        Assert.Contains("alice: plan pro (override)", output, StringComparison.Ordinal);
        Assert.Contains("per-user (fixed_window 10/h): used 10 of 10, 0 remaining", output, StringComparison.Ordinal);

        (code, output, errors) = await RunAsync(Common("usage", "alice", "--json"));
        Assert.True(code == 0, errors);
        Assert.Equal(10, JsonDocument.Parse(output).RootElement.GetProperty("rules")[0].GetProperty("used").GetInt64());

        (code, output, errors) = await RunAsync(Common("override", "set", "bob", "--rate", "per-user=5/h"));
        Assert.True(code == 0, errors);
        Assert.Equal("bob: plan (its claim or the default), per-user 5/h", output.Trim());

        (code, output, errors) = await RunAsync(Common("override", "list", "--limit", "1"));
        Assert.True(code == 0, errors);
        Assert.Equal(["alice: plan pro, until " + output.Split("until ")[1].Split('\n')[0].Trim(), "(more: --after alice)"], output.Trim().Split(Environment.NewLine));

        (code, output, errors) = await RunAsync(Common("override", "delete", "bob"));
        Assert.True(code == 0, errors);
        (code, _, errors) = await RunAsync(Common("override", "get", "bob"));
        Assert.Equal(1, code);
        Assert.Equal("404: 'bob' has no override.", errors.Trim());

        // An account's override: set with --account, applied to a subject of that account that has none of its own.
        (code, output, errors) = await RunAsync(Common("plan", "acme", "pro", "--account"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("account acme: plan pro", output, StringComparison.Ordinal);
        var carol = gateway.Identity.CreateToken(subject: "carol", claims: new Dictionary<string, object> { ["account"] = "acme" });
        Assert.Equal(10, (await gateway.StatusesAsync(12, "/x", carol)).Count(s => s == 200));
        (code, output, errors) = await RunAsync(Common("override", "get", "acme", "--account"));
        Assert.True(code == 0, errors);
        Assert.StartsWith("account acme: plan pro", output, StringComparison.Ordinal);
        (code, _, errors) = await RunAsync(Common("override", "get", "acme"));
        Assert.Equal(1, code);
        (code, output, errors) = await RunAsync(Common("override", "delete", "acme", "--account"));
        Assert.True(code == 0, errors);
        Assert.Equal("removed the override of account acme", output.Trim());

        // Bad input names the field; a wrong token is refused.
        (code, _, errors) = await RunAsync(Common("plan", "alice", "platinum"));
        Assert.Equal(1, code);
        Assert.StartsWith("400: plan: 'platinum' is not a plan; the plans are: free, pro.", errors.Trim(), StringComparison.Ordinal);
        (code, _, errors) = await RunAsync(["admin", "status", "--address", gateway.Host.AdminAddress!.ToString(), "--token", "not-the-token-at-all"]);
        Assert.Equal(1, code);
        Assert.True(errors.StartsWith("refused (401)", StringComparison.Ordinal), errors);
    }

    private static async Task<(int Code, string Output, string Errors)> RunAsync(string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = await GatewayCli.Build(output, errors).Parse(args).InvokeAsync();
        return (code, output.ToString(), errors.ToString());
    }
}
