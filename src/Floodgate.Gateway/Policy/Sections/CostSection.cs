using System.Globalization;
using Floodgate.Costs;
using Floodgate.Limits;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>
/// A rule's <c>cost:</c> when it is a mapping: the cost is known when the response ends (LLM tokens, money), reserved at
/// admission and settled then. Builds the engine's <see cref="RuleCost"/>; a money budget's limit is given in whole units
/// of its currency and counted in micro-units (<see cref="ToMicroUnits"/>).
/// </summary>
/// <remarks>
/// <code>
/// cost:
///   reserve: { field: max_tokens, add: 1000, default: 4096 }   # or a number, or { header: x-max-tokens }
///   charge: total_tokens        # input_tokens, output_tokens, header, money
///   fallback: 2000              # a response that reports no usage; default: the reservation
///   on_failure: refund          # or charge (the fallback), when a failed request reported nothing
/// </code>
/// </remarks>
internal sealed class CostSection(YamlReader reader)
{
    private static readonly string[] Fields = ["unit", "reserve", "charge", "header", "fallback", "on_failure", "prices", "model_field", "max_body", "statuses"];
    private static readonly string[] ReserveFields = ["field", "header", "add", "default"];
    private static readonly string[] PriceFields = ["currency", "default", "models"];
    private static readonly string[] ModelFields = ["input", "output"];

    /// <summary>One micro-unit of a currency is a millionth.</summary>
    public const long MicroUnits = 1_000_000;

    /// <summary>The rule's cost at <paramref name="node"/>; <see langword="null"/> when refused (the errors say why).</summary>
    public RuleCost? Read(YamlNode node, string field)
    {
        var map = reader.Map(node, field, Fields);
        if (map is null)
        {
            return null;
        }

        var errors = reader.Errors.Count;
        var measure = reader.Enum(
            map, "charge", field,
            ("total_tokens", CostMeasure.TotalTokens), ("input_tokens", CostMeasure.InputTokens), ("output_tokens", CostMeasure.OutputTokens),
            ("header", CostMeasure.Reported), ("money", CostMeasure.Money), ("status", CostMeasure.ResponseStatus)) ?? CostMeasure.TotalTokens;
        var statuses = ReadStatuses(map, field, measure);
        var header = reader.String(map, "header", field);
        if (measure == CostMeasure.Reported && string.IsNullOrWhiteSpace(header))
        {
            reader.Error(node, Join(field, "header"), "'charge: header' needs the response header (or trailer) that carries the cost: 'header: x-usage-cost'.");
        }
        else if (measure != CostMeasure.Reported && header is not null)
        {
            reader.Error(YamlReader.Get(map, "header"), Join(field, "header"), "a header carries the cost only with 'charge: header'.");
        }

        var prices = ReadPrices(YamlReader.Get(map, "prices"), Join(field, "prices"));
        if (measure == CostMeasure.Money && prices is null && reader.Errors.Count == errors)
        {
            reader.Error(node, Join(field, "prices"), "'charge: money' needs a price table: 'prices: { currency: usd, default: { input: 5, output: 15 }, models: {...} }'.");
        }
        else if (measure != CostMeasure.Money && YamlReader.Get(map, "prices") is { } pricesNode)
        {
            reader.Error(pricesNode, Join(field, "prices"), "a price table is read only with 'charge: money'.");
        }

        var unit = reader.String(map, "unit", field);
        if (measure == CostMeasure.Money && unit is not null)
        {
            reader.Error(YamlReader.Get(map, "unit"), Join(field, "unit"), "a money budget's unit is its currency's micro-units, named by 'prices.currency'.");
        }

        var reserve = ReadReserve(YamlReader.Get(map, "reserve"), Join(field, "reserve"));
        var fallback = reader.Integer(map, "fallback", field, 0, Limit.MaxAmount);
        var onFailure = reader.Enum(map, "on_failure", field, ("refund", CostOnFailure.Refund), ("charge", CostOnFailure.Charge)) ?? CostOnFailure.Refund;
        var maxBody = reader.Size(map, "max_body", field, 1024, unlimited: false);
        if (maxBody > int.MaxValue / 2)
        {
            reader.Error(YamlReader.Get(map, "max_body"), Join(field, "max_body"), "at most 1 GB of a request body is read for its fields.");
        }

        var modelField = reader.String(map, "model_field", field);
        if (reader.Errors.Count > errors)
        {
            return null;
        }

        try
        {
            return new RuleCost
            {
                Unit = measure == CostMeasure.Money ? prices!.Currency + "-micros" : unit ?? (measure == CostMeasure.ResponseStatus ? "responses" : "tokens"),
                Statuses = statuses,
                Reserve = reserve ?? CostEstimate.None,
                Measure = measure,
                Header = header,
                Prices = prices,
                ModelField = modelField,
                Fallback = fallback,
                OnFailure = onFailure,
                MaxRequestBodyBytes = maxBody is { } max ? (int)max : 1 << 20,
            };
        }
        catch (ArgumentException e)
        {
            reader.Error(node, field, e.Message);
            return null;
        }
    }

    /// <summary>The statuses <c>charge: status</c> counts, such as <c>[401, 403]</c>; <see langword="null"/> for another charge.</summary>
    private int[]? ReadStatuses(YamlMappingNode map, string field, CostMeasure measure)
    {
        var statuses = new List<int>();
        foreach (var (text, node) in reader.StringList(map, "statuses", field))
        {
            if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var status) || status is < 100 or > 599)
            {
                reader.Error(node, Join(field, "statuses"), $"'{text}' is not a response status from 100 to 599.");
                continue;
            }

            statuses.Add(status);
        }

        if (measure == CostMeasure.ResponseStatus && statuses.Count == 0 && YamlReader.Get(map, "statuses") is null)
        {
            reader.Error(map, Join(field, "statuses"), "'charge: status' counts the responses of the statuses listed: 'statuses: [401, 403]'.");
        }
        else if (measure != CostMeasure.ResponseStatus && YamlReader.Get(map, "statuses") is { } node)
        {
            reader.Error(node, Join(field, "statuses"), "statuses are counted only with 'charge: status'.");
        }

        return measure == CostMeasure.ResponseStatus ? [.. statuses] : null;
    }

    /// <summary>
    /// A money budget's limit, given in whole units of its currency (<c>50/month</c> is $50), counted in micro-units: the
    /// amount and burst times a million.
    /// </summary>
    public static Limit ToMicroUnits(Limit limit)
    {
        var rate = new Rate(checked(limit.Amount * MicroUnits), limit.Rate.UnitCount, limit.Rate.Unit);
        return limit.Algorithm switch
        {
            LimitAlgorithm.Gcra => Limit.Gcra(rate, checked(limit.Burst * MicroUnits)),
            LimitAlgorithm.LeakyBucket => Limit.LeakyBucket(rate, checked(limit.Burst * MicroUnits)),
            LimitAlgorithm.FixedWindow => Limit.FixedWindow(rate),
            LimitAlgorithm.SlidingWindow => Limit.SlidingWindow(rate),
            LimitAlgorithm.Quota => Limit.Quota(rate, limit.Calendar),
            _ => throw new ArgumentException("A concurrency limit has no cost to settle.", nameof(limit)),
        };
    }

    private CostEstimate? ReadReserve(YamlNode? node, string field)
    {
        if (node is null || YamlReader.IsNull(node))
        {
            return null;
        }

        if (node is YamlScalarNode { Value: { } text })
        {
            if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var units) && units <= Limit.MaxAmount)
            {
                return CostEstimate.Constant(units);
            }

            reader.Error(node, field, $"'{text}' must be a whole number of units, or a mapping: '{{ field: max_tokens, add: 1000, default: 4096 }}' or '{{ header: x-max-tokens }}'.");
            return null;
        }

        var map = reader.Map(node, field, ReserveFields);
        if (map is null)
        {
            return null;
        }

        var bodyField = reader.String(map, "field", field);
        var header = reader.String(map, "header", field);
        var add = reader.Integer(map, "add", field, 0, Limit.MaxAmount) ?? 0;
        var otherwise = reader.Integer(map, "default", field, 0, Limit.MaxAmount) ?? 0;
        if ((bodyField is null) == (header is null))
        {
            reader.Error(node, field, "a reservation reads one request 'field' (of a JSON body) or one 'header'.");
            return null;
        }

        return bodyField is not null ? CostEstimate.FromField(bodyField, add, otherwise) : CostEstimate.FromHeader(header!, add, otherwise);
    }

    private PriceTable? ReadPrices(YamlNode? node, string field)
    {
        var map = reader.Map(node, field, PriceFields);
        if (map is null)
        {
            return null;
        }

        var currency = reader.String(map, "currency", field);
        if (string.IsNullOrWhiteSpace(currency) || !currency.All(char.IsAsciiLetterLower))
        {
            reader.Error(YamlReader.Get(map, "currency") ?? node, Join(field, "currency"), "name the currency in lower-case letters, such as 'usd' or 'eur'.");
            return null;
        }

        var defaultNode = YamlReader.Get(map, "default");
        if (defaultNode is null)
        {
            reader.Error(node, Join(field, "default"), "a price table needs a default price, for models it does not list: 'default: { input: 5, output: 15 }'.");
            return null;
        }

        var defaultPrice = ReadPrice(defaultNode, Join(field, "default"));
        var models = new Dictionary<string, ModelPrice>(StringComparer.OrdinalIgnoreCase);
        if (reader.Map(YamlReader.Get(map, "models"), Join(field, "models")) is { } modelsMap)
        {
            foreach (var (key, value) in modelsMap.Children)
            {
                if (reader.KeyName(key, Join(field, "models")) is { } model && ReadPrice(value, Join(Join(field, "models"), model)) is { } price)
                {
                    models[model] = price;
                }
            }
        }

        return defaultPrice is { } fallback ? new PriceTable(currency, models, fallback) : null;
    }

    /// <summary>A model's price, in whole units of the currency per million tokens (<c>2.50</c>), as micro-units per million.</summary>
    private ModelPrice? ReadPrice(YamlNode node, string field)
    {
        var map = reader.Map(node, field, ModelFields);
        if (map is null)
        {
            reader.Error(node, field, "expected a price: '{ input: 2.50, output: 10 }', in the currency per million tokens.");
            return null;
        }

        var input = Money(map, "input", field);
        var output = Money(map, "output", field);
        return input is { } i && output is { } o ? new ModelPrice(i, o) : null;
    }

    private long? Money(YamlMappingNode map, string key, string field)
    {
        var text = reader.String(map, key, field);
        if (text is null)
        {
            reader.Error(map, Join(field, key), "missing; a price is the currency per million tokens, such as 2.50.");
            return null;
        }

        if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
            || value * MicroUnits != decimal.Truncate(value * MicroUnits) || value > 1_000_000_000)
        {
            reader.Error(YamlReader.Get(map, key), Join(field, key), $"'{text}' must be a price of at most 1000000000 with at most six decimals, per million tokens.");
            return null;
        }

        return (long)(value * MicroUnits);
    }

    private static string Join(string parent, string child) => YamlReader.Join(parent, child);
}
