using System.Globalization;
using Floodgate.Adaptive;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// A rule's <c>adaptive</c> mapping: a concurrency limit learned from the upstream's latency (docs/adaptive-concurrency.md),
/// read into the library's <see cref="AdaptiveConcurrencyOptions"/> and checked by its own validation.
/// </summary>
internal sealed class AdaptiveSection(YamlReader reader)
{
    private static readonly string[] Fields =
    [
        "algorithm", "mode", "min_limit", "max_limit", "initial_limit", "sample_window", "sample_percentile",
        "min_rtt_interval", "min_rtt_samples", "min_rtt_jitter", "buffer", "smoothing", "backoff_ratio", "timeout",
    ];

    /// <summary>The settings at <paramref name="node"/>; <see langword="null"/> when they are refused (the errors say why).</summary>
    public AdaptiveConcurrencyOptions? Read(YamlNode node, string field)
    {
        var map = reader.Map(node, field, Fields);
        if (map is null)
        {
            // A mapping of another kind was reported by Map; an empty value is reported here.
            if (YamlReader.IsNull(node))
            {
                reader.Error(node, field, $"expected a mapping of {string.Join(", ", Fields)}.");
            }

            return null;
        }

        var errorsBefore = reader.Errors.Count;
        var defaults = new AdaptiveConcurrencyOptions();
        var options = defaults with
        {
            Algorithm = reader.Enum(map, "algorithm", field, ("gradient", AdaptiveAlgorithm.Gradient), ("aimd", AdaptiveAlgorithm.Aimd)) ?? defaults.Algorithm,
            Mode = reader.Enum(map, "mode", field, ("shadow", AdaptiveMode.Shadow), ("enforce", AdaptiveMode.Enforce)) ?? defaults.Mode,
            MinLimit = (int)(reader.Integer(map, "min_limit", field, 1, AdaptiveConcurrencyOptions.MaxAllowedLimit) ?? defaults.MinLimit),
            MaxLimit = (int)(reader.Integer(map, "max_limit", field, 1, AdaptiveConcurrencyOptions.MaxAllowedLimit) ?? defaults.MaxLimit),
            InitialLimit = (int)(reader.Integer(map, "initial_limit", field, 1, AdaptiveConcurrencyOptions.MaxAllowedLimit) ?? defaults.InitialLimit),
            SampleWindow = reader.Duration(map, "sample_window", field, TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(1)) ?? defaults.SampleWindow,
            SamplePercentile = Fraction(map, "sample_percentile", field) ?? defaults.SamplePercentile,
            MinRttInterval = reader.Duration(map, "min_rtt_interval", field, TimeSpan.FromMilliseconds(1), TimeSpan.FromDays(1)) ?? defaults.MinRttInterval,
            MinRttSamples = (int)(reader.Integer(map, "min_rtt_samples", field, 1, AdaptiveConcurrencyLimiter.SampleCapacity) ?? defaults.MinRttSamples),
            MinRttJitter = Fraction(map, "min_rtt_jitter", field) ?? defaults.MinRttJitter,
            Buffer = Fraction(map, "buffer", field) ?? defaults.Buffer,
            Smoothing = Fraction(map, "smoothing", field) ?? defaults.Smoothing,
            BackoffRatio = Fraction(map, "backoff_ratio", field) ?? defaults.BackoffRatio,
            Timeout = reader.Duration(map, "timeout", field, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1)),
        };
        if (reader.Errors.Count > errorsBefore)
        {
            return null;
        }

        try
        {
            options.Validate();
            return options;
        }
        catch (ArgumentException e)
        {
            reader.Error(node, field, PolicyLoader.MessageOf(e).Replace("Adaptive concurrency: ", string.Empty, StringComparison.Ordinal));
            return null;
        }
    }

    /// <summary>A share: a number such as <c>0.25</c>, or a percentage such as <c>25%</c>.</summary>
    private double? Fraction(YamlMappingNode map, string key, string field)
    {
        var text = reader.String(map, key, field);
        if (text is null)
        {
            return null;
        }

        var trimmed = text.Trim();
        var percent = trimmed.EndsWith('%');
        if (double.TryParse(percent ? trimmed[..^1] : trimmed, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
        {
            return percent ? value / 100 : value;
        }

        reader.Error(YamlReader.Get(map, key), YamlReader.Join(field, key), $"'{text}' must be a number such as 0.25, or a percentage such as 25%.");
        return null;
    }
}
