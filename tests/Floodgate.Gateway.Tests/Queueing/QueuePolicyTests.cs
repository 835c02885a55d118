using Floodgate.Gateway.Policy;
using Floodgate.Limits;

namespace Floodgate.Gateway.Tests;

/// <summary>A concurrency rule's queue in a policy: read into the engine's limit, refused with file, line and reason.</summary>
public sealed class QueuePolicyTests
{
    [Fact]
    public void A_concurrency_rule_with_a_queue_builds_its_limit()
    {
        // docs/shaping.md's example, as written there.
        var policy = PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            service:
              - name: reports
                match: { route: /reports }
                concurrency: 2              # two reports run at once
                queue: 3                    # three more wait for a permit
                queue_timeout: 2s           # each at most two seconds, then 503 with Retry-After
                queue_order: lifo           # the newest first: low latency under overload
              - name: exports
                concurrency: 4
                queue: 10
                queue_timeout: 500ms
            """, "p.yaml");
        var rules = policy.Floodgate.Policy.Rules;
        var reports = rules.Single(r => r.Name == "reports").Limit!;
        Assert.Equal((3, TimeSpan.FromSeconds(2), QueueOrder.Lifo), (reports.QueueSize, reports.QueueTimeout, reports.QueueOrder));
        Assert.Equal("concurrency 2 lease 30s queue 3 2s lifo", reports.ToString());
        var exports = rules.Single(r => r.Name == "exports").Limit!;
        Assert.Equal((10, TimeSpan.FromMilliseconds(500), QueueOrder.Fifo), (exports.QueueSize, exports.QueueTimeout, exports.QueueOrder));
    }

    [Theory]
    [InlineData("limit: 10/s\n    queue: 3\n    queue_timeout: 2s", "p.yaml:6:12: service[0].queue: queue, queue_timeout and queue_order apply only to a concurrency limit")]
    [InlineData("concurrency: 2\n    queue: 3", "p.yaml:6:12: service[0].queue_timeout: a queue needs queue_timeout")]
    [InlineData("concurrency: 2\n    queue_timeout: 2s", "service[0].queue: queue_timeout and queue_order need queue")]
    [InlineData("concurrency: 2\n    queue: 0\n    queue_timeout: 2s", "service[0].queue: '0' must be a whole number from 1 to 100000.")]
    [InlineData("concurrency: 2\n    queue: 3\n    queue_timeout: 11m", "service[0].queue_timeout: '11m' must be a duration")]
    [InlineData("concurrency: 2\n    queue: 3\n    queue_timeout: 2s\n    queue_order: random", "service[0].queue_order")]
    public void A_queue_the_engine_cannot_keep_is_refused_with_its_line_and_reason(string fields, string expected)
    {
        var text = "upstream: http://127.0.0.1:5000\nstore: { kind: memory }\nservice:\n  - name: r\n    " + fields;
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse(text, "p.yaml"));
        Assert.Contains(error.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }
}
