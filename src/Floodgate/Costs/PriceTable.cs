namespace Floodgate.Costs;

/// <summary>
/// Prices by model, in integer micro-units of one currency: a money budget is counted in micro-units, so $50 is
/// 50,000,000 and no rounding accumulates across requests.
/// </summary>
public sealed class PriceTable
{
    private readonly Dictionary<string, ModelPrice> _models;

    /// <summary>Creates a table.</summary>
    /// <param name="currency">The currency's name, as the RateLimit fields and metrics name the budget's unit (e.g. <c>usd</c>).</param>
    /// <param name="models">The price of each model, by its name as the upstream spells it (compared without regard to case).</param>
    /// <param name="defaultPrice">The price of a model not in the table, or of a request whose model is not known.</param>
    public PriceTable(string currency, IReadOnlyDictionary<string, ModelPrice> models, ModelPrice defaultPrice)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(currency);
        ArgumentNullException.ThrowIfNull(models);
        Check(defaultPrice, "the default price");
        foreach (var (name, price) in models)
        {
            Check(price, $"the price of '{name}'");
        }

        Currency = currency;
        _models = new Dictionary<string, ModelPrice>(models, StringComparer.OrdinalIgnoreCase);
        DefaultPrice = defaultPrice;
    }

    /// <summary>The currency's name.</summary>
    public string Currency { get; }

    /// <summary>The price of a model not in the table.</summary>
    public ModelPrice DefaultPrice { get; }

    /// <summary>The models priced.</summary>
    public IReadOnlyDictionary<string, ModelPrice> Models => _models;

    /// <summary>The price of <paramref name="model"/>; the default price, with <paramref name="known"/> false, when it is not in the table.</summary>
    public ModelPrice PriceOf(string? model, out bool known)
    {
        known = model is not null && _models.TryGetValue(model, out var price);
        return known ? _models[model!] : DefaultPrice;
    }

    /// <summary>
    /// What <paramref name="input"/> and <paramref name="output"/> tokens of <paramref name="model"/> cost, in micro-units,
    /// rounded up to a whole micro-unit per request.
    /// </summary>
    public long Cost(string? model, long input, long output, out bool known)
    {
        var price = PriceOf(model, out known);
        var micro = (((Int128)Math.Max(0, input) * price.InputPerMillion) + ((Int128)Math.Max(0, output) * price.OutputPerMillion) + 999_999) / 1_000_000;
        return micro > long.MaxValue ? long.MaxValue : (long)micro;
    }

    private static void Check(ModelPrice price, string what)
    {
        if (price.InputPerMillion < 0 || price.OutputPerMillion < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(price), price, $"A price cannot be negative: {what}.");
        }
    }
}
