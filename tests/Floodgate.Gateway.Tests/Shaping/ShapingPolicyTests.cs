using Floodgate.Gateway.Policy;
using Floodgate.Limits;

namespace Floodgate.Gateway.Tests;

/// <summary>sliding_log and leaky_bucket in a policy: read into the engine's limits, refused with file, line and reason.</summary>
public sealed class ShapingPolicyTests
{
    [Fact]
    public void Sliding_log_and_leaky_bucket_rules_build_their_limits()
    {
        var policy = PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            plans:
              free: { per_user: 10/s }
            edge:
              - name: exact
                algorithm: sliding_log
                limit: 100/min
            user:
              - name: meter
                algorithm: leaky_bucket
                limit: plan.per_user
                burst: 4
            global:
              - name: all
                algorithm: leaky_bucket
                limit: 1000/s
            """, "p.yaml");
        var rules = policy.Floodgate.Policy.Rules;
        Assert.Equal("sliding_log 100/min", rules.Single(r => r.Name == "exact").Limit!.ToString());
        Assert.Equal("leaky_bucket 10/s burst 4", rules.Single(r => r.Name == "meter").LimitFor("free")!.ToString());
        Assert.Equal(LimitAlgorithm.LeakyBucket, rules.Single(r => r.Name == "all").Limit!.Algorithm);
        Assert.Equal(1000, rules.Single(r => r.Name == "all").Limit!.Burst);
    }

    [Fact]
    public void The_example_of_the_shaping_page_loads()
    {
        // docs/shaping.md's policy, as written there.
        var policy = PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            edge:
              - name: login-exact
                match: { method: POST, route: /login }
                algorithm: sliding_log          # exact: at most 5 in any 15 minutes, whenever they came
                limit: 5/15min
            user:
              - name: export-meter
                algorithm: leaky_bucket         # a bucket of 20 that leaks 2 a second; what does not fit is rejected
                limit: 2/s
                burst: 20
            """, "shaping.yaml");
        Assert.Equal("sliding_log 5/15min", policy.Floodgate.Policy.Rules.Single(r => r.Name == "login-exact").Limit!.ToString());
        Assert.Equal("leaky_bucket 2/s burst 20", policy.Floodgate.Policy.Rules.Single(r => r.Name == "export-meter").Limit!.ToString());
    }

    [Theory]
    [InlineData("algorithm: sliding_log\n    limit: 1001/min", "p.yaml:6:12: user[0].limit: The amount of 1001/min is beyond 1000, the most a sliding_log keeps")]
    [InlineData("algorithm: sliding_log\n    limit: 10/s\n    burst: 3", "user[0].burst: burst applies only to gcra (token bucket) and leaky_bucket limits.")]
    [InlineData("algorithm: sliding_log\n    limit: 10/s\n    leased_slice: 2", "user[0].leased_slice: A sliding_log limit cannot be leased")]
    [InlineData("algorithm: sliding_log\n    limit: 10/s\n    cost: { reserve: 1 }", "user[0].cost: a sliding_log keeps one entry per unit at its time and settles no cost afterwards")]
    [InlineData("algorithm: leaky_bucket\n    limit: 700000/s", "user[0].limit: The rate 700000/s is too fine for leaky_bucket")]
    public void A_shaping_limit_the_engine_cannot_keep_is_refused_with_its_line_and_reason(string fields, string expected)
    {
        var text = "upstream: http://127.0.0.1:5000\nstore: { kind: redis, configuration: '127.0.0.1:6379' }\nuser:\n  - name: r\n    " + fields;
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(text, "p.yaml"));
        Assert.Contains(error.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }
}
