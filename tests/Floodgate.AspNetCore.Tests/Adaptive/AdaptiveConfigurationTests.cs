using Floodgate.Adaptive;
using Floodgate.AspNetCore.Configuration;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Tests.Adaptive;

/// <summary>Adaptive concurrency limits bound from ASP.NET Core configuration.</summary>
public sealed class AdaptiveConfigurationTests
{
    private static FloodgateOptions Read(Dictionary<string, string?> values) => ConfiguredOptions.Read(values);

    [Fact]
    public void Every_field_is_read_into_the_library_s_options()
    {
        var options = Read(new()
        {
            ["Adaptive:search:Paths:0"] = "/search/**",
            ["Adaptive:search:Methods:0"] = "GET",
            ["Adaptive:search:Algorithm"] = "Gradient",
            ["Adaptive:search:Mode"] = "Enforce",
            ["Adaptive:search:MinLimit"] = "4",
            ["Adaptive:search:MaxLimit"] = "400",
            ["Adaptive:search:InitialLimit"] = "40",
            ["Adaptive:search:SampleWindow"] = "00:00:00.250",
            ["Adaptive:search:SamplePercentile"] = "0.95",
            ["Adaptive:search:MinRttInterval"] = "00:00:30",
            ["Adaptive:search:MinRttSamples"] = "40",
            ["Adaptive:search:MinRttJitter"] = "0.1",
            ["Adaptive:search:Buffer"] = "0.2",
            ["Adaptive:search:Smoothing"] = "0.3",
            ["Adaptive:orders:Algorithm"] = "aimd",
            ["Adaptive:orders:BackoffRatio"] = "0.8",
            ["Adaptive:orders:Timeout"] = "00:00:02",
        });

        Assert.Empty(options.ConfigurationProblems);
        options.Validate();
        var rules = options.AdaptiveRules.ToDictionary(r => r.Name);
        Assert.Equal(
            new AdaptiveConcurrencyOptions
            {
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
            rules["search"].Options);
        Assert.Single(rules["search"].Match.Paths);
        Assert.Equal(["GET"], rules["search"].Match.Methods);
        Assert.Equal(new AdaptiveConcurrencyOptions { Algorithm = AdaptiveAlgorithm.Aimd, BackoffRatio = 0.8, Timeout = TimeSpan.FromSeconds(2) }, rules["orders"].Options);
    }

    [Theory]
    [InlineData("MinLimit", "-1", "Adaptive:api:MinLimit: '-1' is not a whole number")]
    [InlineData("Mode", "Enforced", "Adaptive:api:Mode: 'Enforced' is not one of Shadow, Enforce")]
    [InlineData("SampleWindow", "soon", "Adaptive:api:SampleWindow: 'soon' is not a duration")]
    [InlineData("Smoothing", "0", "Adaptive:api: The rule 'api': Adaptive concurrency: smoothing must be above 0")]
    [InlineData("Paths:0", "search", "Adaptive:api:Paths:0: The path pattern 'search' must start with '/'")]
    [InlineData("Window", "1", "Adaptive:api:Window: unknown field")]
    public void A_bad_value_is_a_problem_naming_its_path(string field, string value, string expected)
    {
        var options = Read(new() { [$"Adaptive:api:{field}"] = value });
        Assert.Contains(options.ConfigurationProblems, p => p.Contains(expected, StringComparison.Ordinal));
        Assert.Empty(options.AdaptiveRules);
        Assert.Throws<ArgumentException>(options.Validate);
    }
}
