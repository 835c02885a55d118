using System.Globalization;
using Floodgate.Adaptive;
using Floodgate.Rules;
using Microsoft.Extensions.Configuration;

namespace Floodgate.AspNetCore.Configuration;

/// <summary>
/// Reads <c>Adaptive</c>: one adaptive concurrency limit per child, named by its key (docs/adaptive-concurrency.md),
/// such as <c>"Adaptive": { "api": { "Paths": ["/api/*"], "Mode": "Enforce", "MaxLimit": 200 } }</c>. Each problem is
/// recorded with its configuration path, as the rest of the section's are.
/// </summary>
internal static class AdaptiveConfigurationReader
{
    private static readonly string[] Fields =
    [
        "Paths", "Methods", "Algorithm", "Mode", "MinLimit", "MaxLimit", "InitialLimit", "SampleWindow", "SamplePercentile",
        "MinRttInterval", "MinRttSamples", "MinRttJitter", "Buffer", "Smoothing", "BackoffRatio", "Timeout",
    ];

    public static void Read(IConfigurationSection adaptive, FloodgateOptions options, Action<IConfiguration, string[], List<string>> checkFields)
    {
        var problems = options.ConfigurationProblems;
        var rules = new List<AdaptiveConcurrencyRule>(options.AdaptiveRules);
        foreach (var child in adaptive.GetChildren())
        {
            var before = problems.Count;
            checkFields(child, Fields, problems);
            var defaults = new AdaptiveConcurrencyOptions();
            var settings = defaults with
            {
                Algorithm = Enum(child, "Algorithm", defaults.Algorithm, problems),
                Mode = Enum(child, "Mode", defaults.Mode, problems),
                MinLimit = (int)Number(child, "MinLimit", defaults.MinLimit, problems),
                MaxLimit = (int)Number(child, "MaxLimit", defaults.MaxLimit, problems),
                InitialLimit = (int)Number(child, "InitialLimit", defaults.InitialLimit, problems),
                SampleWindow = Duration(child, "SampleWindow", defaults.SampleWindow, problems),
                SamplePercentile = Fraction(child, "SamplePercentile", defaults.SamplePercentile, problems),
                MinRttInterval = Duration(child, "MinRttInterval", defaults.MinRttInterval, problems),
                MinRttSamples = (int)Number(child, "MinRttSamples", defaults.MinRttSamples, problems),
                MinRttJitter = Fraction(child, "MinRttJitter", defaults.MinRttJitter, problems),
                Buffer = Fraction(child, "Buffer", defaults.Buffer, problems),
                Smoothing = Fraction(child, "Smoothing", defaults.Smoothing, problems),
                BackoffRatio = Fraction(child, "BackoffRatio", defaults.BackoffRatio, problems),
                Timeout = child["Timeout"] is null ? null : Duration(child, "Timeout", TimeSpan.Zero, problems),
            };
            var paths = new List<PathGlob>();
            foreach (var path in child.GetSection("Paths").GetChildren())
            {
                try
                {
                    paths.Add(new PathGlob(path.Value ?? string.Empty));
                }
                catch (FormatException e)
                {
                    problems.Add($"{path.Path}: {e.Message}");
                }
            }

            var methods = child.GetSection("Methods").GetChildren().Select(m => m.Value ?? string.Empty).Where(m => m.Length > 0).ToArray();
            if (problems.Count > before)
            {
                continue;
            }

            try
            {
                rules.Add(new AdaptiveConcurrencyRule(child.Key, settings) { Match = new RuleMatch { Paths = paths, Methods = methods } });
            }
            catch (ArgumentException e)
            {
                problems.Add($"{child.Path}: {e.Message}");
            }
        }

        options.AdaptiveRules = rules;
    }

    private static T Enum<T>(IConfigurationSection section, string field, T fallback, List<string> problems)
        where T : struct, System.Enum
    {
        if (section[field] is not { } text)
        {
            return fallback;
        }

        if (System.Enum.TryParse<T>(text, ignoreCase: true, out var value) && System.Enum.IsDefined(value) && !char.IsAsciiDigit(text.TrimStart('-')[0]))
        {
            return value;
        }

        problems.Add($"{section.Path}:{field}: '{text}' is not one of {string.Join(", ", System.Enum.GetNames<T>())}.");
        return fallback;
    }

    private static long Number(IConfigurationSection section, string field, long fallback, List<string> problems)
    {
        if (section[field] is not { } text)
        {
            return fallback;
        }

        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }

        problems.Add($"{section.Path}:{field}: '{text}' is not a whole number of 0 or more.");
        return fallback;
    }

    private static double Fraction(IConfigurationSection section, string field, double fallback, List<string> problems)
    {
        if (section[field] is not { } text)
        {
            return fallback;
        }

        if (double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }

        problems.Add($"{section.Path}:{field}: '{text}' is not a number such as 0.25.");
        return fallback;
    }

    private static TimeSpan Duration(IConfigurationSection section, string field, TimeSpan fallback, List<string> problems)
    {
        if (section[field] is not { } text)
        {
            return fallback;
        }

        if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value))
        {
            return value;
        }

        problems.Add($"{section.Path}:{field}: '{text}' is not a duration such as 00:00:00.100.");
        return fallback;
    }
}
