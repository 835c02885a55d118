using Floodgate.Client.Pacing;

namespace Floodgate.Client.Tests.Pacing;

public sealed class RetryPolicyTests
{
    private static readonly FloodgatePacingOptions Options = new() { RetryBaseDelay = TimeSpan.FromSeconds(1), MaxRetryDelay = TimeSpan.FromSeconds(30) };

    [Theory]
    [InlineData(0, 2.0, 3.0)]   // Retry-After 2 s, first retry: [2, 2 + 1]
    [InlineData(2, 2.0, 6.0)]   // third retry: [2, 2 + 4]
    [InlineData(10, 2.0, 30.0)] // the spread stops at the cap
    public void A_server_delay_is_the_floor_and_full_jitter_of_the_backoff_is_added_within_the_cap(int attempt, double low, double high)
    {
        var samples = new Random(42);
        var least = double.MaxValue;
        var most = 0.0;
        for (var i = 0; i < 10_000; i++)
        {
            var delay = RetryPolicy.Delay(TimeSpan.FromSeconds(2), attempt, Options, samples.NextDouble())!.Value.TotalSeconds;
            Assert.InRange(delay, low, high);
            least = Math.Min(least, delay);
            most = Math.Max(most, delay);
        }

        // Spread over the whole range, not bunched: callers refused together come back apart.
        Assert.True(least < low + ((high - low) * 0.01) && most > high - ((high - low) * 0.01), $"{least}..{most}");
        Assert.Equal(TimeSpan.FromSeconds(low), RetryPolicy.Delay(TimeSpan.FromSeconds(2), attempt, Options, 0));
    }

    [Fact]
    public void Without_a_server_delay_the_wait_is_full_jitter_of_the_backoff()
    {
        Assert.Equal(TimeSpan.Zero, RetryPolicy.Delay(null, 3, Options, 0));
        Assert.Equal(TimeSpan.FromSeconds(4), RetryPolicy.Delay(null, 3, Options, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(15), RetryPolicy.Delay(null, 20, Options, 0.5));
    }

    [Fact]
    public void A_server_delay_past_the_cap_is_not_waited_for()
    {
        Assert.Null(RetryPolicy.Delay(TimeSpan.FromSeconds(31), 0, Options, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(30), RetryPolicy.Delay(TimeSpan.FromSeconds(30), 0, Options, 0.9));
    }

    [Theory]
    [InlineData("GET", true)]
    [InlineData("HEAD", true)]
    [InlineData("OPTIONS", true)]
    [InlineData("PUT", true)]
    [InlineData("DELETE", true)]
    [InlineData("POST", false)]
    [InlineData("PATCH", false)]
    public void Only_idempotent_methods_are_retried_unless_told(string method, bool retried)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "http://api.test/");
        Assert.Equal(retried, RetryPolicy.MayRetry(request, new FloodgatePacingOptions()));
        Assert.True(RetryPolicy.MayRetry(request, new FloodgatePacingOptions { RetryNonIdempotent = true }));

        request.Options.Set(FloodgateRequestOptions.RetryRejections, !retried);
        Assert.Equal(!retried, RetryPolicy.MayRetry(request, new FloodgatePacingOptions()));
    }
}
