using Floodgate.Gateway.Cli;
using Floodgate.Gateway.Hosting;

namespace Floodgate.Gateway.Tests;

/// <summary><c>run --store-startup-timeout</c> and <see cref="GatewayHostOptions.StoreStartupTimeout"/>.</summary>
public sealed class StoreStartupOptionTests
{
    [Theory]
    [InlineData(null, 30)]
    [InlineData("5s", 5)]
    [InlineData("2m", 120)]
    [InlineData("0", 0)]
    public void The_store_startup_timeout_is_read_from_the_command_line(string? value, int seconds)
    {
        var result = Parse(value is null ? [] : ["--store-startup-timeout", value]);

        Assert.Empty(result.Errors);
        Assert.Equal(TimeSpan.FromSeconds(seconds), RunCommand.Options(result).StoreStartupTimeout);
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("30")]
    [InlineData("2h")]
    public void A_store_startup_timeout_that_is_no_duration_up_to_an_hour_is_refused(string value)
    {
        var error = Assert.Single(Parse(["--store-startup-timeout", value]).Errors);
        Assert.Equal($"'{value}' is not a duration such as 30s or 2m, from 0 (no wait) to 1h.", error.Message);
    }

    [Fact]
    public void A_negative_store_startup_timeout_is_refused_by_the_options()
    {
        var options = new GatewayHostOptions { PolicyPath = "policy.yaml", StoreStartupTimeout = TimeSpan.FromSeconds(-1) };
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Equal(nameof(GatewayHostOptions.StoreStartupTimeout), error.ParamName);
    }

    private static System.CommandLine.ParseResult Parse(string[] extra) =>
        GatewayCli.Build(TextWriter.Null, TextWriter.Null).Parse(["run", "--policy", "policy.yaml", .. extra]);
}
