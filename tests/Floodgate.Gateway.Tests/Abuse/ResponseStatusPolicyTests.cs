using Floodgate.Costs;
using Floodgate.Gateway.Policy;
using Floodgate.Rules;

namespace Floodgate.Gateway.Tests.Abuse;

/// <summary>A rule's <c>cost: { charge: status, statuses: [...] }</c>: responses counted by status.</summary>
public sealed class ResponseStatusPolicyTests
{
    private static GatewayPolicy Parse(string text) => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\n" + text, "p.yaml");

    [Fact]
    public void Reads_the_statuses_into_the_rule_cost_and_its_ban()
    {
        var policy = Parse("""
            edge:
              - name: login-failures
                match: { path: /login, method: POST }
                key: [client_ip]
                limit: 5/10min
                algorithm: fixed_window
                cost: { charge: status, statuses: [401, 403] }
                ban: 15m
            """);
        var rule = Assert.Single(policy.Floodgate.Policy.RulesOf(RateLimitTier.Edge).ToArray());
        Assert.Equal(CostMeasure.ResponseStatus, rule.Costs!.Measure);
        Assert.Equal([401, 403], rule.Costs.Statuses!.Order());
        Assert.Equal("responses", rule.Costs.Unit);
        Assert.Equal(0, rule.Costs.Estimate(new RequestContext()));
        Assert.Equal(TimeSpan.FromMinutes(15), policy.Floodgate.Bans["login-failures"]);
    }

    [Theory]
    [InlineData("cost: { charge: status }", "'charge: status' counts the responses of the statuses listed")]
    [InlineData("cost: { charge: status, statuses: [401, 700] }", "'700' is not a response status")]
    [InlineData("cost: { charge: total_tokens, statuses: [401] }", "statuses are counted only with 'charge: status'")]
    public void Refuses_statuses_that_cannot_be_counted(string cost, string expected)
    {
        var error = Assert.Throws<PolicyException>(() => Parse($"edge:\n  - name: f\n    limit: 5/min\n    {cost}"));
        Assert.Contains(error.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }
}
