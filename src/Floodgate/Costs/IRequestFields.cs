namespace Floodgate.Costs;

/// <summary>
/// The top-level fields of a request's body that cost rules read (<see cref="CostEstimate.FromField"/>, a model to price
/// by), as a front door that read them implements it beside <see cref="Rules.IRequestContext"/>.
/// </summary>
public interface IRequestFields
{
    /// <summary>The field's value as text (a number's digits, a string's characters); <see langword="null"/> when absent or not read.</summary>
    string? GetField(string name);
}
