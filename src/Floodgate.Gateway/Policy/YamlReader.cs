using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy;

/// <summary>Reads a YAML tree field by field, collecting every problem with its file, line and field.</summary>
internal sealed class YamlReader(string file)
{
    private readonly List<PolicyError> _errors = [];

    public IReadOnlyList<PolicyError> Errors => _errors;

    public string File => file;

    public void Error(YamlNode? node, string field, string message) =>
        _errors.Add(new PolicyError(file, node is null ? 0 : (int)node.Start.Line, node is null ? 0 : (int)node.Start.Column, field, message));

    /// <summary>The node as a mapping, checking its keys against <paramref name="known"/>.</summary>
    public YamlMappingNode? Map(YamlNode? node, string field, params string[] known)
    {
        if (node is null || IsNull(node))
        {
            return null;
        }

        if (node is not YamlMappingNode map)
        {
            Error(node, field, $"expected a mapping of {string.Join(", ", known)}.");
            return null;
        }

        foreach (var key in map.Children.Keys)
        {
            var name = (key as YamlScalarNode)?.Value ?? string.Empty;
            if (known.Length > 0 && !known.Contains(name, StringComparer.Ordinal))
            {
                Error(key, Join(field, name), $"unknown field; expected one of: {string.Join(", ", known)}.");
            }
        }

        return map;
    }

    /// <summary>The name a mapping key gives, or <see langword="null"/> (reported) when the key is a list or a mapping.</summary>
    public string? KeyName(YamlNode key, string field)
    {
        if (key is YamlScalarNode scalar)
        {
            return scalar.Value ?? string.Empty;
        }

        Error(key, field, "a name here must be a plain value, not a list or a mapping.");
        return null;
    }

    public static YamlNode? Get(YamlMappingNode? map, string key)
    {
        if (map is null)
        {
            return null;
        }

        foreach (var (k, v) in map.Children)
        {
            if (k is YamlScalarNode { Value: { } name } && string.Equals(name, key, StringComparison.Ordinal))
            {
                return v;
            }
        }

        return null;
    }

    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: null or "" or "~" or "null" };

    public static string Join(string parent, string child) => parent.Length == 0 ? child : $"{parent}.{child}";

    public string? String(YamlMappingNode? map, string key, string field)
    {
        var node = Get(map, key);
        if (node is null || IsNull(node))
        {
            return null;
        }

        if (node is not YamlScalarNode scalar)
        {
            Error(node, Join(field, key), "expected a single value.");
            return null;
        }

        return scalar.Value;
    }

    /// <summary>A scalar or a list of scalars, as a list.</summary>
    public List<(string Value, YamlNode Node)> StringList(YamlMappingNode? map, string key, string field)
    {
        var result = new List<(string, YamlNode)>();
        var node = Get(map, key);
        if (node is null || IsNull(node))
        {
            return result;
        }

        if (node is YamlScalarNode { Value: { } single })
        {
            result.Add((single, node));
            return result;
        }

        if (node is not YamlSequenceNode sequence)
        {
            Error(node, Join(field, key), "expected a value or a list of values.");
            return result;
        }

        for (var i = 0; i < sequence.Children.Count; i++)
        {
            if (sequence.Children[i] is YamlScalarNode { Value: { } value })
            {
                result.Add((value, sequence.Children[i]));
            }
            else
            {
                Error(sequence.Children[i], $"{Join(field, key)}[{i}]", "expected a single value.");
            }
        }

        return result;
    }

    public bool? Bool(YamlMappingNode? map, string key, string field)
    {
        var text = String(map, key, field);
        if (text is null)
        {
            return null;
        }

        switch (text.ToLowerInvariant())
        {
            case "true" or "yes" or "on":
                return true;
            case "false" or "no" or "off":
                return false;
            default:
                Error(Get(map, key), Join(field, key), $"'{text}' is not true or false.");
                return null;
        }
    }

    public long? Integer(YamlMappingNode? map, string key, string field, long min, long max)
    {
        var text = String(map, key, field);
        if (text is null)
        {
            return null;
        }

        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            Error(Get(map, key), Join(field, key), $"'{text}' must be a whole number from {min} to {max}.");
            return null;
        }

        return value;
    }

    public TimeSpan? Duration(YamlMappingNode? map, string key, string field, TimeSpan min, TimeSpan max)
    {
        var text = String(map, key, field);
        if (text is null)
        {
            return null;
        }

        if (!TryParseDuration(text, out var value) || value < min || value > max)
        {
            Error(Get(map, key), Join(field, key), $"'{text}' must be a duration such as 500ms, 30s, 5m or 1h, from {Format(min)} to {Format(max)}.");
            return null;
        }

        return value;
    }

    /// <summary>
    /// A size in bytes: a whole number, or one with a unit (<c>kB</c>, <c>MB</c>, <c>GB</c>, <c>TB</c> in powers of 1000;
    /// <c>KiB</c>, <c>MiB</c>, <c>GiB</c>, <c>TiB</c> in powers of 1024), from <paramref name="min"/>; or -1 for
    /// <c>unlimited</c> when <paramref name="unlimited"/> allows it.
    /// </summary>
    public long? Size(YamlMappingNode? map, string key, string field, long min, bool unlimited)
    {
        var text = String(map, key, field);
        if (text is null)
        {
            return null;
        }

        if (unlimited && string.Equals(text.Trim(), "unlimited", StringComparison.OrdinalIgnoreCase))
        {
            return -1;
        }

        if (!TryParseSize(text, out var value) || value < min)
        {
            var least = min > 0 ? $", at least {min} byte{(min == 1 ? string.Empty : "s")}" : string.Empty;
            Error(Get(map, key), Join(field, key), $"'{text}' must be a size such as 1048576, 512kB, 100MB or 2GiB{least}{(unlimited ? ", or unlimited" : string.Empty)}.");
            return null;
        }

        return value;
    }

    public static bool TryParseSize(string text, out long value)
    {
        value = 0;
        var span = text.AsSpan().Trim();
        var digits = 0;
        while (digits < span.Length && (char.IsAsciiDigit(span[digits]) || span[digits] == '.'))
        {
            digits++;
        }

        if (digits == 0 || !decimal.TryParse(span[..digits], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            return false;
        }

        // Units are case-sensitive where case tells them apart (b is not B); a lone k, M or G is the decimal unit.
        decimal? multiplier = span[digits..].Trim().ToString() switch
        {
            "" or "B" => 1m,
            "k" or "K" or "kB" or "KB" => 1e3m,
            "M" or "MB" => 1e6m,
            "G" or "GB" => 1e9m,
            "T" or "TB" => 1e12m,
            "Ki" or "KiB" => 1024m,
            "Mi" or "MiB" => 1024m * 1024,
            "Gi" or "GiB" => 1024m * 1024 * 1024,
            "Ti" or "TiB" => 1024m * 1024 * 1024 * 1024,
            _ => null,
        };
        if (multiplier is not { } m || amount * m > long.MaxValue || decimal.Truncate(amount * m) != amount * m)
        {
            return false;
        }

        value = (long)(amount * m);
        return true;
    }

    public T? Enum<T>(YamlMappingNode? map, string key, string field, params (string Name, T Value)[] values)
        where T : struct =>
        Choice(map, key, field, values) is { Found: true } choice ? choice.Value : null;

    public string? Name(YamlMappingNode? map, string key, string field, params (string Name, string Value)[] values) =>
        Choice(map, key, field, values) is { Found: true } choice ? choice.Value : null;

    private (bool Found, T Value) Choice<T>(YamlMappingNode? map, string key, string field, (string Name, T Value)[] values)
    {
        var text = String(map, key, field);
        if (text is null)
        {
            return (false, default!);
        }

        foreach (var (name, value) in values)
        {
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase))
            {
                return (true, value);
            }
        }

        Error(Get(map, key), Join(field, key), $"'{text}' is not one of: {string.Join(", ", values.Select(v => v.Name))}.");
        return (false, default!);
    }

    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        var span = text.AsSpan().Trim();
        var digits = 0;
        while (digits < span.Length && (char.IsAsciiDigit(span[digits]) || span[digits] == '.'))
        {
            digits++;
        }

        if (digits == 0 || !double.TryParse(span[..digits], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            return false;
        }

        double? seconds = span[digits..].Trim().ToString().ToLowerInvariant() switch
        {
            "ms" => amount / 1000,
            "s" or "sec" or "secs" or "second" or "seconds" => amount,
            "m" or "min" or "mins" or "minute" or "minutes" => amount * 60,
            "h" or "hr" or "hour" or "hours" => amount * 3600,
            "d" or "day" or "days" => amount * 86400,
            _ => null,
        };
        if (seconds is not { } s || s > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            return false;
        }

        value = TimeSpan.FromSeconds(s);
        return true;
    }

    private static string Format(TimeSpan span) =>
        span.TotalSeconds < 1 ? $"{span.TotalMilliseconds:0}ms" : span.TotalSeconds < 120 ? $"{span.TotalSeconds:0}s" : span.TotalHours < 48 ? $"{span.TotalMinutes:0}m" : $"{span.TotalDays:0}d";
}
