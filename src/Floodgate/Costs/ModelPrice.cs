namespace Floodgate.Costs;

/// <summary>The price of a model's tokens, in micro-units of a currency per million tokens (so $2.50 per million is 2,500,000).</summary>
/// <param name="InputPerMillion">The price of a million input tokens, in micro-units.</param>
/// <param name="OutputPerMillion">The price of a million output tokens, in micro-units.</param>
public readonly record struct ModelPrice(long InputPerMillion, long OutputPerMillion);
