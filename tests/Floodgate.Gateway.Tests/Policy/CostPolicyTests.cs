using Floodgate.Costs;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;

namespace Floodgate.Gateway.Tests;

public sealed class CostPolicyTests
{
    [Fact]
    public void The_llm_policy_of_docs_cost_md_loads_with_its_reservations_prices_and_money_in_micro_units()
    {
        var markdown = File.ReadAllText(Path.Combine(PolicyTests.RepositoryRoot(), "docs", "cost.md"));
        var start = markdown.IndexOf("```yaml\n", StringComparison.Ordinal) + "```yaml\n".Length;
        var policy = PolicyLoader.Parse(markdown[start..markdown.IndexOf("```", start, StringComparison.Ordinal)], "docs/cost.md");
        var rules = policy.Floodgate.Policy.Rules.ToDictionary(r => r.Name);

        var tokens = rules["tokens-per-user"].Costs!;
        Assert.Equal("tokens", tokens.Unit);
        Assert.Equal(("max_tokens", 2000L, 8000L), (tokens.Reserve.Field, tokens.Reserve.Units, tokens.Reserve.Otherwise));
        Assert.Equal((CostMeasure.TotalTokens, 8000L, CostOnFailure.Refund), (tokens.Measure, tokens.Fallback!.Value, tokens.OnFailure));

        var dollars = rules["dollars-per-user"];
        Assert.Equal("usd-micros", dollars.Costs!.Unit);
        Assert.Equal(50_000_000, dollars.Limit!.Amount);
        Assert.Equal(LimitAlgorithm.Quota, dollars.Limit.Algorithm);
        Assert.Equal(new ModelPrice(150_000, 600_000), dollars.Costs.Prices!.Models["gpt-4o-mini"]);
        Assert.Equal(new ModelPrice(5_000_000, 15_000_000), dollars.Costs.Prices.DefaultPrice);
        Assert.Equal("model", dollars.Costs.ModelField);

        Assert.Equal("header:x-agent-session", rules["tokens-per-agent-run"].Key.Single().ToString());
        Assert.Null(rules["llm-capacity"].Costs);
    }

    [Theory]
    [InlineData("cost: { charge: header }", "user[0].cost.header: 'charge: header' needs the response header")]
    [InlineData("cost: { charge: money }", "user[0].cost.prices: 'charge: money' needs a price table")]
    [InlineData("cost: { reserve: { field: max_tokens, header: x-max } }", "user[0].cost.reserve: a reservation reads one request 'field'")]
    [InlineData("cost: { reserve: lots }", "user[0].cost.reserve: 'lots' must be a whole number of units")]
    [InlineData("cost: { charge: money, prices: { currency: usd, default: { input: 0.0000001, output: 1 } } }", "user[0].cost.prices.default.input: '0.0000001' must be a price")]
    [InlineData("cost: { unit: \"to kens\" }", "user[0].cost: A cost unit is letters, digits")]
    [InlineData("cost: { on_failure: maybe }", "user[0].cost.on_failure")]
    [InlineData("concurrency: 3\n    cost: { reserve: 1 }", "user[0].cost: a concurrency limit counts requests in flight")]
    public void A_cost_the_engine_could_not_settle_is_refused_with_its_line_and_field(string fields, string expected)
    {
        var text = "user:\n  - name: r\n    " + (fields.StartsWith("concurrency", StringComparison.Ordinal) ? fields : "limit: 1000/d\n    " + fields);
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\n" + text, "p.yaml"));
        Assert.Contains(error.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }
}
