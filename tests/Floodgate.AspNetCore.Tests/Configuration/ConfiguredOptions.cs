using Floodgate.AspNetCore.Configuration;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Tests;

/// <summary>Options read from configuration values by the reader <c>AddFloodgate(configuration)</c> registers.</summary>
internal static class ConfiguredOptions
{
    /// <summary>The options <paramref name="values"/> give, their problems in <see cref="FloodgateOptions.ConfigurationProblems"/>.</summary>
    public static FloodgateOptions Read(Dictionary<string, string?> values)
    {
        var options = new FloodgateOptions();
        new FloodgateConfigurationReader(new ConfigurationBuilder().AddInMemoryCollection(values).Build()).Configure(options);
        return options;
    }
}
