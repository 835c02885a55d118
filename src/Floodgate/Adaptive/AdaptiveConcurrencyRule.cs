using Floodgate.Rules;

namespace Floodgate.Adaptive;

/// <summary>
/// A rule's adaptive concurrency limit: the requests it applies to (<see cref="Match"/>) share one learned limit per
/// replica. It applies beside the rule's own limits, if it has any: both must admit a request.
/// </summary>
public sealed class AdaptiveConcurrencyRule
{
    /// <summary>Creates the rule.</summary>
    /// <param name="name">The rule's name: it names the limit in metrics, logs and the dashboard.</param>
    /// <param name="options">The settings; validated.</param>
    /// <exception cref="ArgumentException">The name is empty or the options are invalid.</exception>
    public AdaptiveConcurrencyRule(string name, AdaptiveConcurrencyOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"The rule '{name}': {e.Message}", nameof(options), e);
        }

        Name = name;
        Options = options;
    }

    /// <summary>The rule's name.</summary>
    public string Name { get; }

    /// <summary>The settings.</summary>
    public AdaptiveConcurrencyOptions Options { get; }

    /// <summary>Which requests the limit applies to. Default: every request.</summary>
    public RuleMatch Match { get; init; } = RuleMatch.Any;
}
