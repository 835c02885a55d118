using Floodgate.Adaptive;
using Floodgate.Gateway.Policy;
using Floodgate.Limits;

namespace Floodgate.Gateway.Tests.Adaptive;

public sealed class AdaptivePolicyTests
{
    [Fact]
    public void An_adaptive_block_builds_the_library_s_options()
    {
        var policy = PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            service:
              - name: search
                match: { path: /search/** }
                adaptive:
                  algorithm: gradient
                  mode: enforce
                  min_limit: 4
                  max_limit: 400
                  initial_limit: 40
                  sample_window: 250ms
                  sample_percentile: 95%
                  min_rtt_interval: 30s
                  min_rtt_samples: 40
                  min_rtt_jitter: 0.1
                  buffer: 20%
                  smoothing: 0.3
              - name: orders
                match: { path: /orders/** }
                concurrency: 100
                adaptive: { algorithm: aimd, backoff_ratio: 0.8, timeout: 2s }
            """, "p.yaml");

        var adaptive = policy.Floodgate.AdaptiveRules;
        Assert.Equal(["search", "orders"], adaptive.Select(r => r.Name));
        Assert.Equal(
            new AdaptiveConcurrencyOptions
            {
                Algorithm = AdaptiveAlgorithm.Gradient,
                Mode = AdaptiveMode.Enforce,
                MinLimit = 4,
                MaxLimit = 400,
                InitialLimit = 40,
                SampleWindow = TimeSpan.FromMilliseconds(250),
                SamplePercentile = 0.95,
                MinRttInterval = TimeSpan.FromSeconds(30),
                MinRttSamples = 40,
                MinRttJitter = 0.1,
                Buffer = 0.2,
                Smoothing = 0.3,
            },
            adaptive[0].Options);
        Assert.Single(adaptive[0].Match.Paths);
        Assert.Equal(new AdaptiveConcurrencyOptions { Algorithm = AdaptiveAlgorithm.Aimd, BackoffRatio = 0.8, Timeout = TimeSpan.FromSeconds(2) }, adaptive[1].Options);
        Assert.Equal(AdaptiveMode.Shadow, adaptive[1].Options.Mode);

        // The rule with only an adaptive limit is not an engine rule; the one with a fixed concurrency limit is both.
        var rule = Assert.Single(policy.Floodgate.Policy.Rules);
        Assert.Equal("orders", rule.Name);
        Assert.Equal(LimitAlgorithm.Concurrency, rule.Limit!.Algorithm);
    }

    [Theory]
    [InlineData("adaptive: { min_limit: 50, max_limit: 10 }", "service[0].adaptive", "min_limit (50) must not exceed max_limit (10)")]
    [InlineData("adaptive: { initial_limit: 2000 }", "service[0].adaptive", "initial_limit (2000) must be from min_limit")]
    [InlineData("adaptive: { smoothing: 0 }", "service[0].adaptive", "smoothing must be above 0")]
    [InlineData("adaptive: { buffer: lots }", "service[0].adaptive.buffer", "'lots' must be a number such as 0.25")]
    [InlineData("adaptive: { mode: enforced }", "service[0].adaptive.mode", "enforced")]
    [InlineData("adaptive: { sample_window: 0ms }", "service[0].adaptive.sample_window", "must be a duration")]
    [InlineData("adaptive: { window: 1s }", "service[0].adaptive.window", "unknown field")]
    [InlineData("adaptive: 10", "service[0].adaptive", "expected a mapping")]
    [InlineData("key: [client_ip]\n    adaptive: {}", "service[0].key", "has only an adaptive one")]
    public void Bad_adaptive_settings_are_refused_with_the_field_and_the_reason(string yaml, string field, string reason)
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse($"""
            upstream: http://127.0.0.1:5000
            service:
              - name: api
                {yaml}
            """, "bad.yaml"));
        var found = Assert.Single(error.Errors, e => e.Field == field);
        Assert.Contains(reason, found.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_adaptive_limit_belongs_to_a_service_rule()
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            user:
              - name: per-user
                limit: 10/s
                adaptive: { mode: enforce }
            """, "bad.yaml"));
        var found = Assert.Single(error.Errors);
        Assert.Equal("user[0].adaptive", found.Field);
        Assert.Contains("service rule", found.Message, StringComparison.Ordinal);
    }
}
