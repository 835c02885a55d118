using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Configuration;
using Floodgate.Limits;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Tests.Shaping;

/// <summary>sliding_log and leaky_bucket bound from ASP.NET Core configuration.</summary>
public sealed class ShapingConfigurationTests
{
    private static FloodgateOptions Read(Dictionary<string, string?> values)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var options = new FloodgateOptions();
        new FloodgateConfigurationReader(configuration).Configure(options);
        return options;
    }

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
        });
        Assert.Empty(options.ConfigurationProblems);
        Assert.Equal("sliding_log 50/min", options.Policies["exact"].Limit!.ToString());
        Assert.Equal("leaky_bucket 10/s burst 3", options.Policies["meter"].Limit!.ToString());
    }

    [Theory]
    [InlineData("sliding_log", "5000/min", null, "Policies:p:Limit: The amount of 5000/min is beyond 1000, the most a sliding_log keeps")]
    [InlineData("sliding_log", "10/s", "2", "Policies:p:Burst: only a gcra or leaky_bucket policy takes a burst.")]
    [InlineData("leaky_buckets", "10/s", null, "Policies:p:Algorithm: 'leaky_buckets' is not an algorithm here: gcra (the default), leaky_bucket, sliding_window, sliding_log")]
    public void A_bad_shaping_policy_is_a_problem_naming_its_path(string algorithm, string limit, string? burst, string expected)
    {
        var options = Read(new() { ["Policies:p:Limit"] = limit, ["Policies:p:Algorithm"] = algorithm, ["Policies:p:Burst"] = burst });
        Assert.Contains(options.ConfigurationProblems, p => p.Contains(expected, StringComparison.Ordinal));
    }
}
