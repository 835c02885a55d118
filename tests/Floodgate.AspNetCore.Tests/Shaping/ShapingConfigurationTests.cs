using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Configuration;
using Floodgate.Limits;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Tests.Shaping;

/// <summary>sliding_log and leaky_bucket bound from ASP.NET Core configuration.</summary>
public sealed class ShapingConfigurationTests
{
    private static FloodgateOptions Read(Dictionary<string, string?> values) => ConfiguredOptions.Read(values);

    [Fact]
    public void Both_algorithms_are_read_by_either_spelling()
    {
        var options = Read(new()
        {
            ["Policies:exact:Limit"] = "50/min",
            ["Policies:exact:Algorithm"] = "sliding_log",
            ["Policies:meter:Limit"] = "10/s",
            ["Policies:meter:Algorithm"] = "LeakyBucket",
            ["Policies:meter:Burst"] = "3",
            ["Policies:queue:Limit"] = "10/s",
            ["Policies:queue:Algorithm"] = "leaky_bucket",
            ["Policies:queue:MaxDelay"] = "00:00:05",
        });
        Assert.Empty(options.ConfigurationProblems);
        Assert.Equal("sliding_log 50/min", options.Policies["exact"].Limit!.ToString());
        Assert.Equal("leaky_bucket 10/s burst 3", options.Policies["meter"].Limit!.ToString());
        Assert.Equal("leaky_bucket 10/s max_delay 5s", options.Policies["queue"].Limit!.ToString());
    }

    [Theory]
    [InlineData("sliding_log", "5000/min", null, "Policies:p:Limit: The amount of 5000/min is beyond 1000, the most a sliding_log keeps")]
    [InlineData("sliding_log", "10/s", "2", "Policies:p:Burst: only a gcra or leaky_bucket policy takes a burst.")]
    [InlineData("leaky_buckets", "10/s", null, "Policies:p:Algorithm: 'leaky_buckets' is not an algorithm here: gcra (the default), leaky_bucket, sliding_window, sliding_log")]
    [InlineData("gcra", "10/s", null, "Policies:p:MaxDelay: applies only to a leaky_bucket policy", "00:00:05")]
    [InlineData("leaky_bucket", "10/s", "2", "Policies:p:MaxDelay: give Burst (a leaky_bucket meter) or MaxDelay (a queue), not both.", "00:00:05")]
    [InlineData("leaky_bucket", "10/s", null, "Policies:p:MaxDelay: 'soon' is not a positive duration", "soon")]
    public void A_bad_shaping_policy_is_a_problem_naming_its_path(string algorithm, string limit, string? burst, string expected, string? maxDelay = null)
    {
        var options = Read(new() { ["Policies:p:Limit"] = limit, ["Policies:p:Algorithm"] = algorithm, ["Policies:p:Burst"] = burst, ["Policies:p:MaxDelay"] = maxDelay });
        Assert.Contains(options.ConfigurationProblems, p => p.Contains(expected, StringComparison.Ordinal));
    }
}
