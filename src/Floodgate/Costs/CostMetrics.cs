using System.Diagnostics.Metrics;

namespace Floodgate.Costs;

/// <summary>
/// The cost counters of the engine's meter, per rule and unit: reserved at admission, charged when settled (the real
/// cost), refunded, and over-run (charged past the reservation); models priced at the default price; settlements the
/// store could not make.
/// </summary>
internal sealed class CostMetrics(Meter meter)
{
    private readonly Counter<long> _reserved = meter.CreateCounter<long>("floodgate.cost.reserved", "{unit}", "Cost reserved at admission, by rule and unit.");
    private readonly Counter<long> _charged = meter.CreateCounter<long>("floodgate.cost.charged", "{unit}", "Cost charged once settled (the real cost), by rule and unit.");
    private readonly Counter<long> _refunded = meter.CreateCounter<long>("floodgate.cost.refunded", "{unit}", "Reserved cost given back when a request cost less, failed or was not served, by rule and unit.");
    private readonly Counter<long> _overrun = meter.CreateCounter<long>("floodgate.cost.overrun", "{unit}", "Cost charged past the reservation, by rule and unit.");
    private readonly Counter<long> _unknownModels = meter.CreateCounter<long>("floodgate.cost.unknown_models", "{request}", "Requests priced at the default price because their model is not in the price table, by rule.");
    private readonly Counter<long> _failures = meter.CreateCounter<long>("floodgate.cost.settle_failures", "{settlement}", "Settlements the store could not make (the reservation stood), by rule.");

    public void Reserved(string rule, string unit, long units) => Add(_reserved, rule, unit, units);

    public void Settled(string rule, string unit, long reserved, long charged)
    {
        Add(_charged, rule, unit, charged);
        Add(_refunded, rule, unit, reserved - charged);
        Add(_overrun, rule, unit, charged - reserved);
    }

    public void UnknownModel(string rule) => _unknownModels.Add(1, new KeyValuePair<string, object?>("rule", rule));

    public void Failed(string rule) => _failures.Add(1, new KeyValuePair<string, object?>("rule", rule));

    private static void Add(Counter<long> counter, string rule, string unit, long units)
    {
        if (units > 0 && counter.Enabled)
        {
            counter.Add(units, new KeyValuePair<string, object?>("rule", rule), new KeyValuePair<string, object?>("unit", unit));
        }
    }
}
