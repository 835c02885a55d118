using Floodgate.Gateway.Policy;

namespace Floodgate.Gateway.Tests;

/// <summary>The policy's <c>thresholds</c> and <c>events</c> fields.</summary>
public sealed class ThresholdPolicyTests
{
    [Fact]
    public void Thresholds_and_webhooks_are_read()
    {
        Environment.SetEnvironmentVariable("FLOODGATE_TEST_WEBHOOK_SECRET", "0123456789abcdef0123");
        var policy = PolicyLoader.Parse("""
            upstream: http://127.0.0.1:5000
            user:
              - name: monthly
                limit: 10000/d
                algorithm: quota
                thresholds: [100%, 80, 80%]
            events:
              webhooks:
                - { url: "https://hooks.example.com/floodgate", secret_env: FLOODGATE_TEST_WEBHOOK_SECRET }
              queue: 50
              retries: 3
              timeout: 2s
              retry_delay: 500ms
            """, "p.yaml");
        Assert.Equal([80, 100], policy.Floodgate.Policy.Rules[0].Thresholds);
        var webhook = Assert.Single(policy.Events.Webhooks);
        Assert.Equal("https://hooks.example.com/floodgate", webhook.Url.ToString());
        Assert.Equal((50, 3, TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(500)), (policy.Events.QueueCapacity, policy.Events.Retries, policy.Events.Timeout, policy.Events.RetryDelay));
    }

    [Theory]
    [InlineData("user:\n  - name: r\n    limit: 10/d\n    thresholds: [0%]", "user[0].thresholds: '0%' is not a percentage of the limit from 1% to 100%")]
    [InlineData("user:\n  - name: r\n    limit: 10/d\n    thresholds: [120%]", "user[0].thresholds: '120%' is not a percentage")]
    [InlineData("user:\n  - name: r\n    limit: 10/d\n    thresholds: [most]", "user[0].thresholds: 'most' is not a percentage")]
    [InlineData("events:\n  webhooks:\n    - { url: ftp://x, secret_env: HOME }", "events.webhooks[0].url: 'ftp://x' is not an http or https URL")]
    [InlineData("events:\n  webhooks:\n    - { url: http://x }", "events.webhooks[0]: needs exactly one of secret_file or secret_env")]
    [InlineData("events:\n  webhooks:\n    - { url: http://x, secret_env: FLOODGATE_TEST_NO_SUCH_SECRET }", "events.webhooks[0].secret_env: the secret must be at least 16 characters")]
    [InlineData("events:\n  queue: 0", "events.queue")]
    public void Bad_fields_are_refused_with_their_field(string text, string expected)
    {
        var error = Assert.Throws<PolicyException>(() => PolicyLoader.Parse("upstream: http://127.0.0.1:5000\n" + text, "p.yaml"));
        Assert.Contains(error.Errors, e => e.ToString().Contains(expected, StringComparison.Ordinal));
    }
}
