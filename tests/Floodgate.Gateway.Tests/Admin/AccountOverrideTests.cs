using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Floodgate.Gateway.Tests;

/// <summary>An account's plan set through the admin API applies to the account's subjects that have no override of their own.</summary>
public sealed class AccountOverrideTests
{
    [Fact]
    public async Task An_accounts_plan_applies_to_its_subjects_and_a_subjects_own_override_comes_first()
    {
        using var token = new AdminTokens();
        await using var gate = await TestGateway.StartAsync($$"""
            upstream: {upstream}
            {identity}
            default_plan: free
            plans:
              free: { per_user: 3/h }
              team: { per_user: 6/h }
              pro: { per_user: 10/h }
            user:
              - name: per-user
                limit: plan.per_user
                algorithm: quota
                calendar: false
            {{token.Section}}
            """);
        using var admin = token.Client(gate.Host.AdminAddress!);
        var acme = new Dictionary<string, object> { ["account"] = "acme" };

        using (var change = await admin.PutAsJsonAsync("/admin/v1/accounts/acme/plan", new { plan = "team" }))
        {
            Assert.Equal(HttpStatusCode.OK, change.StatusCode);
            var view = JsonDocument.Parse(await change.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("acme", view.GetProperty("subject").GetString());
            Assert.True(view.GetProperty("account").GetBoolean());
        }

        using (var own = await admin.PutAsJsonAsync("/admin/v1/overrides/carol", new { plan = "pro" }))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        var bob = gate.Identity.CreateToken(subject: "bob", claims: acme);
        var carol = gate.Identity.CreateToken(subject: "carol", claims: acme);
        var erin = gate.Identity.CreateToken(subject: "erin");
        Assert.Equal(6, (await gate.StatusesAsync(12, "/x", bob)).Count(s => s == 200));
        Assert.Equal(10, (await gate.StatusesAsync(12, "/x", carol)).Count(s => s == 200));
        Assert.Equal(3, (await gate.StatusesAsync(12, "/x", erin)).Count(s => s == 200));

        var listed = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/overrides")).RootElement.GetProperty("overrides");
        Assert.Equal(["acme", "carol"], listed.EnumerateArray().Select(o => o.GetProperty("subject").GetString()));
        using var subject = await admin.GetAsync("/admin/v1/overrides/acme");
        Assert.Equal(HttpStatusCode.NotFound, subject.StatusCode);
        using var removed = await admin.DeleteAsync("/admin/v1/accounts/acme/override");
        Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        using var gone = await admin.GetAsync("/admin/v1/accounts/acme/override");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }
}
