using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Configuration;
using Floodgate.Limits;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Tests.Queueing;

/// <summary>A concurrency policy's queue bound from ASP.NET Core configuration, and its problems named by path.</summary>
public sealed class QueueConfigurationTests
{
    private static FloodgateOptions Read(Dictionary<string, string?> values) => ConfiguredOptions.Read(values);

    [Fact]
    public void A_concurrency_policy_reads_its_queue()
    {
        var options = Read(new()
        {
            ["Policies:reports:Concurrency"] = "2",
            ["Policies:reports:Queue"] = "3",
            ["Policies:reports:QueueTimeout"] = "00:00:02",
            ["Policies:reports:QueueOrder"] = "lifo",
            ["Policies:plain:Concurrency"] = "5",
        });
        Assert.Empty(options.ConfigurationProblems);
        Assert.Equal("concurrency 2 lease 30s queue 3 2s lifo", options.Policies["reports"].Limit!.ToString());
        Assert.Equal(0, options.Policies["plain"].Limit!.QueueSize);
    }

    [Theory]
    [InlineData(null, "3", "00:00:02", null, "Policies:p:Queue: Queue, QueueTimeout and QueueOrder apply only to a Concurrency policy")]
    [InlineData("2", "3", null, null, "Policies:p:QueueTimeout: a queue needs QueueTimeout")]
    [InlineData("2", null, "00:00:02", null, "Policies:p:Queue: QueueTimeout and QueueOrder need Queue")]
    [InlineData("2", "0", "00:00:02", null, "Policies:p:Queue: a queue holds from 1 to 100000 requests, not '0'.")]
    [InlineData("2", "3", "00:11:00", null, "Policies:p:QueueTimeout: a queue needs QueueTimeout, the longest a request waits, from 1 ms to 10 minutes")]
    [InlineData("2", "3", "00:00:02", "random", "Policies:p:QueueOrder: 'random' is not fifo or lifo.")]
    [InlineData("2", "3", "00:00:02", "1", "Policies:p:QueueOrder: '1' is not fifo or lifo.")]
    public void A_bad_queue_is_a_problem_naming_its_path(string? concurrency, string? queue, string? timeout, string? order, string expected)
    {
        var options = Read(new()
        {
            ["Policies:p:Limit"] = concurrency is null ? "10/s" : null,
            ["Policies:p:Concurrency"] = concurrency,
            ["Policies:p:Queue"] = queue,
            ["Policies:p:QueueTimeout"] = timeout,
            ["Policies:p:QueueOrder"] = order,
        });
        Assert.Contains(options.ConfigurationProblems, p => p.Contains(expected, StringComparison.Ordinal));
    }
}
