using Floodgate.Rules;

namespace Floodgate.Costs;

/// <summary>
/// A rule whose cost is known only when the response ends (LLM tokens, money): it reserves an estimate when it admits a
/// request and settles the difference once the real cost is known (<see cref="Engine.RateLimitEngine.SettleAsync"/>).
/// </summary>
/// <remarks>
/// A reservation the budget cannot cover is refused at once, with the exact retry-after of any other decision. The
/// settlement is a refund when the request cost less, an extra charge when it cost more: a key may go below zero, and
/// then admits nothing (not even a request that reserves nothing) until it has refilled past zero. Set on a rule with
/// <see cref="RateLimitRule.Costs"/>; not for a concurrency limit.
/// </remarks>
public sealed class RuleCost
{
    private readonly string _unit = "tokens";
    private readonly long? _fallback;

    /// <summary>The budget's unit, named in the RateLimit fields and metrics: <c>tokens</c> by default, the currency for money.</summary>
    public string Unit
    {
        get => _unit;
        init
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(value);
            if (!value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                throw new ArgumentException($"A cost unit is letters, digits, '-', '_' and '.' (it is quoted in the RateLimit-Policy field): '{value}'.", nameof(value));
            }

            _unit = value;
        }
    }

    /// <summary>What is reserved at admission. Default: nothing.</summary>
    public CostEstimate Reserve { get; init; } = CostEstimate.None;

    /// <summary>What is charged once the usage is known. Default: all tokens.</summary>
    public CostMeasure Measure { get; init; } = CostMeasure.TotalTokens;

    /// <summary>The response header or trailer that carries the cost in units, for <see cref="CostMeasure.Reported"/>.</summary>
    public string? Header { get; init; }

    /// <summary>
    /// The response statuses that count one each, for <see cref="CostMeasure.ResponseStatus"/> (such as 401 and 403 on a
    /// login route); every other response counts nothing.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A status is not from 100 to 599.</exception>
    public IReadOnlyCollection<int>? Statuses
    {
        get;
        init
        {
            if (value is not null && value.Any(s => s is < 100 or > 599))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value.First(s => s is < 100 or > 599), "A response status is from 100 to 599.");
            }

            field = value is null ? null : new HashSet<int>(value);
        }
    }

    /// <summary>The prices, for <see cref="CostMeasure.Money"/>; its currency is the rule's unit.</summary>
    public PriceTable? Prices { get; init; }

    /// <summary>The request body field that names the model to price by; otherwise the response's <c>model</c>.</summary>
    public string? ModelField { get; init; }

    /// <summary>
    /// What a response that reports no usage is charged; <see langword="null"/> (the default) keeps the reservation as
    /// its cost.
    /// </summary>
    public long? Fallback
    {
        get => _fallback;
        init
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "A fallback charge cannot be negative.");
            }

            _fallback = value;
        }
    }

    /// <summary>What a failed or abandoned request that reported no usage is charged. Default: nothing (a refund).</summary>
    public CostOnFailure OnFailure { get; init; }

    /// <summary>
    /// The most of a JSON request body a front door reads for <see cref="CostEstimate.FromField"/> and
    /// <see cref="ModelField"/>: a body larger than this is not read, and the estimate is its fallback. Default 1 MiB.
    /// </summary>
    public int MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Whether the rule reads usage from the response body (tokens, or money priced from tokens).</summary>
    public bool ReadsBodyUsage => Measure is not (CostMeasure.Reported or CostMeasure.ResponseStatus);

    /// <summary>What the rule reserves for <paramref name="request"/>.</summary>
    /// <remarks>
    /// A header or field read by a money rule is a count of tokens, priced as output tokens of the request's model (its
    /// <see cref="ModelField"/>, else the table's default price), then the constant is added.
    /// </remarks>
    public long Estimate(IRequestContext request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!Reserve.ReadsRequest)
        {
            return Reserve.Units;
        }

        if (Reserve.ReadFrom(request) is not { } read)
        {
            return Reserve.Otherwise;
        }

        if (Measure == CostMeasure.Money && Prices is not null)
        {
            var model = ModelField is not null && request is IRequestFields fields ? fields.GetField(ModelField) : null;
            read = Prices.Cost(model, 0, read, out _);
        }

        return read > long.MaxValue - Reserve.Units ? long.MaxValue : read + Reserve.Units;
    }

    /// <summary>
    /// The rule's charge for <paramref name="report"/>, in its unit; <see langword="null"/> when the report has no figure the
    /// rule reads.
    /// </summary>
    /// <param name="report">What the request used.</param>
    /// <param name="unknownModel">Whether money was priced at the default price, its model not being in the table.</param>
    public long? Charge(CostReport report, out bool unknownModel)
    {
        ArgumentNullException.ThrowIfNull(report);
        unknownModel = false;
        switch (Measure)
        {
            case CostMeasure.TotalTokens:
                return report.AllTokens;
            case CostMeasure.InputTokens:
                return report.InputTokens;
            case CostMeasure.OutputTokens:
                return report.OutputTokens;
            case CostMeasure.Reported:
                return report.Units;
            case CostMeasure.ResponseStatus:
                return report.StatusCode is { } status ? (Statuses is { } counted && counted.Contains(status) ? 1 : 0) : null;
        }

        if (report.Units is { } units)
        {
            return units;
        }

        if (Prices is null || (report.InputTokens is null && report.OutputTokens is null && report.TotalTokens is null))
        {
            return null;
        }

        // Only a total: priced as output, the dearer kind, rather than under-charged.
        var (input, output) = report.InputTokens is null && report.OutputTokens is null
            ? (0, report.TotalTokens ?? 0)
            : (report.InputTokens ?? 0, report.OutputTokens ?? 0);
        var cost = Prices.Cost(report.Model, input, output, out var known);
        unknownModel = !known;
        return cost;
    }
}
