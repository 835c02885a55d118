using Floodgate.Abuse;
using Floodgate.Gateway.Policy;
using Floodgate.Rules;

namespace Floodgate.Gateway.Tests.Abuse;

/// <summary>The rule's <c>distinct</c> field, read into the engine's own settings.</summary>
public sealed class DistinctPolicyTests
{
    private static GatewayPolicy Parse(string text) => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\n" + text, "p.yaml");

    [Fact]
    public void Reads_every_field_into_the_rule()
    {
        var policy = Parse("""
            user:
              - name: stolen-key
                distinct: { of: network, action: ban, ban: 2h }
                limit: 20/hour
              - name: stuffing
                key: [client_ip]
                match: { path: /login }
                distinct: { of: subject, status: 403 }
                limit: 5/10min
              - name: watch
                distinct: { of: client_ip, ipv4_prefix: 16, action: flag }
                limit: 100/day
            """);
        var rules = policy.Floodgate.Policy.DistinctRules.ToArray();
        Assert.Equal(["stolen-key", "stuffing", "watch"], rules.Select(r => r.Name));
        Assert.Empty(policy.Floodgate.Policy.RulesOf(RateLimitTier.User).ToArray());

        var stolen = rules[0];
        Assert.Equal([KeyPart.Subject], stolen.Key);
        Assert.Equal(20, stolen.Limit!.Amount);
        Assert.Equal(TimeSpan.FromHours(1), stolen.Limit.Rate.Period);
        Assert.Equal(KeyPart.ClientIp, stolen.Distinct!.Of);
        Assert.Equal((24, 64), (stolen.Distinct.Ipv4Prefix, stolen.Distinct.Ipv6Prefix));
        Assert.Equal(DistinctAction.Ban, stolen.Distinct.Action);
        Assert.Equal(TimeSpan.FromHours(2), stolen.Distinct.BanDuration);

        var stuffing = rules[1].Distinct!;
        Assert.Equal((KeyPart.Subject, DistinctAction.Reject, 403), (stuffing.Of, stuffing.Action, stuffing.RejectStatus));
        Assert.Equal((16, 128, DistinctAction.Flag), (rules[2].Distinct!.Ipv4Prefix, rules[2].Distinct!.Ipv6Prefix, rules[2].Distinct!.Action));
    }

    [Fact]
    public void The_abuse_signal_policies_of_docs_edge_md_load()
    {
        var markdown = File.ReadAllText(Path.Combine(PolicyTests.RepositoryRoot(), "docs", "edge.md"));
        var rules = new Dictionary<string, RateLimitRule>();
        foreach (var heading in (string[])["### Distinct counting", "### Counting responses"])
        {
            var start = markdown.IndexOf("```yaml\n", markdown.IndexOf(heading, StringComparison.Ordinal), StringComparison.Ordinal) + "```yaml\n".Length;
            foreach (var rule in Parse(markdown[start..markdown.IndexOf("```", start, StringComparison.Ordinal)]).Floodgate.Policy.Rules)
            {
                rules[rule.Name] = rule;
            }
        }

        Assert.Equal(DistinctAction.Ban, rules["stolen-key"].Distinct!.Action);
        Assert.Equal(24, rules["stolen-key"].Distinct!.Ipv4Prefix);
        Assert.Equal(403, rules["stuffing"].Distinct!.RejectStatus);
        Assert.Equal(DistinctAction.Flag, rules["watch"].Distinct!.Action);
        Assert.Equal(Floodgate.Costs.CostMeasure.ResponseStatus, rules["login-failures"].Costs!.Measure);
    }

    [Theory]
    [InlineData("edge:\n  - name: d\n    distinct: { of: subject }\n    limit: 5/min", "distinct rules are user rules")]
    [InlineData("user:\n  - name: d\n    distinct: { of: route }\n    limit: 5/min", "counts who calls")]
    [InlineData("user:\n  - name: d\n    distinct: { of: subject }\n    limit: 5/min", "keyed on 'subject' already")]
    [InlineData("user:\n  - name: d\n    key: [subject, route]\n    distinct: { action: ban }\n    limit: 5/min", "key the rule on [subject] or [client_ip] alone")]
    [InlineData("user:\n  - name: d\n    distinct: { status: 500 }\n    limit: 5/min", "429 or 403")]
    [InlineData("user:\n  - name: d\n    distinct: { action: flag, ban: 1h }\n    limit: 5/min", "for 'action: ban'")]
    [InlineData("user:\n  - name: d\n    distinct: { of: subject, ipv4_prefix: 24 }\n    key: [client_ip]\n    limit: 5/min", "prefixes group client addresses")]
    [InlineData("user:\n  - name: d\n    distinct: {}\n    cost: 2\n    limit: 5/min", "counts values, not requests")]
    [InlineData("plans:\n  free: { x: 5/min }\nuser:\n  - name: d\n    distinct: {}\n    limit: plan.x", "not plan limits")]
    public void Refuses_what_cannot_be_counted(string text, string expected)
    {
        var error = Assert.Throws<PolicyException>(() => Parse(text));
        Assert.Contains(error.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }
}
