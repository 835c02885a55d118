using Floodgate.AspNetCore;
using Floodgate.Limits;
using Floodgate.Rules;
using Floodgate.Stores;
using YamlDotNet.RepresentationModel;

namespace Floodgate.Gateway.Policy.Sections;

/// <summary>One rule of a tier: its name, <c>match</c> (read by <see cref="MatchSection"/>), key, limit and the rest.</summary>
/// <param name="reader">Where errors go.</param>
/// <param name="plans">The plans a limit such as <c>plan.per_user</c> takes its rates from.</param>
/// <param name="defaultPlan">The plan of requests that name none.</param>
/// <param name="store">The store: fields that apply to Redis only are refused with the memory store.</param>
internal sealed class RuleSection(YamlReader reader, PlanSet plans, string? defaultPlan, StoreRead store)
{
    private static readonly string[] Fields =
    [
        "name", "match", "key", "limit", "burst", "algorithm", "cost", "mode", "ban", "concurrency",
        "lease_timeout", "calendar", "time_zone", "leased_slice", "on_failure", "thresholds", "max_delay",
        "distinct",
        "queue", "queue_timeout", "queue_order",
        "adaptive",
    ];

    // What only a rule's own limit uses: refused on a rule that has only an adaptive limit.
    private static readonly string[] LimitFields =
    [
        "key", "burst", "algorithm", "cost", "mode", "ban", "lease_timeout", "calendar", "time_zone", "leased_slice", "on_failure", "thresholds", "max_delay",
        "queue", "queue_timeout", "queue_order",
    ];

    /// <summary>
    /// The rule at <paramref name="node"/>: its limit (none for a rule with only an adaptive limit), its ban and its adaptive
    /// limit; <see langword="null"/> when it is refused (the errors say why).
    /// </summary>
    public (RateLimitRule? Rule, TimeSpan? Ban, Floodgate.Adaptive.AdaptiveConcurrencyRule? Adaptive)? Read(YamlNode node, string field, RateLimitTier tier)
    {
        var map = reader.Map(node, field, Fields);
        if (map is null)
        {
            reader.Error(node, field, "expected a rule: name, match, key, and limit or concurrency.");
            return null;
        }

        var errorsBefore = reader.Errors.Count;
        var name = reader.String(map, "name", field);
        if (string.IsNullOrWhiteSpace(name))
        {
            reader.Error(node, $"{field}.name", "every rule needs a name; it names the rule in headers, logs and metrics.");
            return null;
        }

        if (!FloodgateOptions.IsValidRuleName(name))
        {
            reader.Error(YamlReader.Get(map, "name"), $"{field}.name", $"'{name}' is sent in the RateLimit and RateLimit-Policy headers: use printable ASCII (0x20 to 0x7E) without '\"' or '\\'.");
            return null;
        }

        var match = MatchSection.Read(reader, map, field);
        if (YamlReader.Get(map, "adaptive") is { } adaptiveNode)
        {
            return ReadAdaptive(map, adaptiveNode, field, tier, name, match, errorsBefore);
        }

        return ReadLimited(map, field, tier, name, match, errorsBefore) is { } read ? (read.Rule, read.Ban, null) : null;
    }

    /// <summary>A rule's own limit, with its key, cost and the rest, and its ban; <paramref name="errorsBefore"/> is the count of errors before the rule was read (any since refuse it).</summary>
    private (RateLimitRule Rule, TimeSpan? Ban)? ReadLimited(YamlMappingNode map, string field, RateLimitTier tier, string name, RuleMatch match, int errorsBefore)
    {
        var key = ReadKey(map, field, tier);
        // A number is what each request costs; a mapping, a cost known when the response ends (CostSection).
        var costNode = YamlReader.Get(map, "cost");
        var costs = costNode is YamlMappingNode ? new CostSection(reader).Read(costNode, $"{field}.cost") : null;
        var cost = costs is null ? reader.Integer(map, "cost", field, 0, 1_000_000_000) ?? 1 : 1;
        var mode = reader.Enum(map, "mode", field, ("enforce", RuleMode.Enforce), ("shadow", RuleMode.Shadow)) ?? RuleMode.Enforce;
        var onFailure = reader.Enum(map, "on_failure", field, ("open", StoreFailureMode.Open), ("closed", StoreFailureMode.Closed), ("local", StoreFailureMode.Local)) ?? StoreFailureMode.Default;
        store.RefuseRedisOnly(reader, YamlReader.Get(map, "on_failure"), $"{field}.on_failure", "the memory store never fails");
        store.RefuseRedisOnly(reader, YamlReader.Get(map, "leased_slice"), $"{field}.leased_slice", "the memory store decides in process, with no round trip to save");
        var ban = reader.Duration(map, "ban", field, TimeSpan.FromSeconds(1), TimeSpan.FromDays(365));
        if (ban is not null && tier != RateLimitTier.Edge)
        {
            reader.Error(YamlReader.Get(map, "ban"), $"{field}.ban", "only edge rules can ban a client IP.");
        }

        var thresholds = ReadThresholds(map, field);
        var distinct = ReadDistinct(map, field, tier, key);
        var (fixedLimit, planLimits) = new LimitSection(reader, map, field, tier, plans).Read();
        if ((fixedLimit is null && planLimits is null) || reader.Errors.Count > errorsBefore)
        {
            return null;
        }

        if (costs is not null && !CostsFit(costs, ref fixedLimit, ref planLimits, costNode!, field))
        {
            return null;
        }

        if (distinct is not null)
        {
            return fixedLimit is null
                ? Refuse(map, field, "a distinct rule needs one limit, the most distinct values a key may show in a window, not plan limits.")
                : (new RateLimitRule(name, tier, fixedLimit) { Match = match, Key = key.Count == 0 ? [KeyPart.Subject] : key, Mode = mode, Distinct = distinct }, null);
        }

        var rule = (fixedLimit, key.Count > 0) switch
        {
            (not null, true) => new RateLimitRule(name, tier, fixedLimit) { Match = match, Key = key, Cost = cost, Costs = costs, Mode = mode, OnStoreFailure = onFailure, Thresholds = thresholds },
            (not null, false) => new RateLimitRule(name, tier, fixedLimit) { Match = match, Cost = cost, Costs = costs, Mode = mode, OnStoreFailure = onFailure, Thresholds = thresholds },
            (null, true) => new RateLimitRule(name, tier, planLimits!, defaultPlan) { Match = match, Key = key, Cost = cost, Costs = costs, Mode = mode, OnStoreFailure = onFailure, Thresholds = thresholds },
            (null, false) => new RateLimitRule(name, tier, planLimits!, defaultPlan) { Match = match, Cost = cost, Costs = costs, Mode = mode, OnStoreFailure = onFailure, Thresholds = thresholds },
        };
        return (rule, ban);
    }

    /// <summary>
    /// A rule with an adaptive limit: a service rule, with or without a fixed limit of its own (both apply; the key, cost
    /// and the rest belong to the fixed limit).
    /// </summary>
    private (RateLimitRule? Rule, TimeSpan? Ban, Floodgate.Adaptive.AdaptiveConcurrencyRule? Adaptive)? ReadAdaptive(YamlMappingNode map, YamlNode adaptiveNode, string field, RateLimitTier tier, string name, RuleMatch match, int errorsBefore)
    {
        if (tier != RateLimitTier.Service)
        {
            reader.Error(adaptiveNode, $"{field}.adaptive", "an adaptive limit protects an upstream from more requests at once than it can serve: declare it on a service rule.");
            return null;
        }

        var options = new AdaptiveSection(reader).Read(adaptiveNode, $"{field}.adaptive");
        RateLimitRule? rule = null;
        if (YamlReader.Get(map, "limit") is not null || YamlReader.Get(map, "concurrency") is not null)
        {
            rule = ReadLimited(map, field, tier, name, match, errorsBefore)?.Rule;
        }
        else
        {
            foreach (var other in LimitFields)
            {
                if (YamlReader.Get(map, other) is { } otherNode)
                {
                    reader.Error(otherNode, $"{field}.{other}", $"'{other}' applies to a rule's own limit, and this rule has only an adaptive one (one learned limit per rule and replica): give limit or concurrency too, or remove it.");
                }
            }
        }

        if (options is null || reader.Errors.Count > errorsBefore)
        {
            return null;
        }

        return (rule, null, new Floodgate.Adaptive.AdaptiveConcurrencyRule(name, options) { Match = match });
    }

    /// <summary>
    /// Whether a cost known at the response's end fits the rule's limits: never a concurrency limit nor a sliding log; a money budget's
    /// limits are given in whole units of the currency and counted in micro-units.
    /// </summary>
    private bool CostsFit(Floodgate.Costs.RuleCost costs, ref Limit? fixedLimit, ref Dictionary<string, Limit>? planLimits, YamlNode costNode, string field)
    {
        var limits = fixedLimit is not null ? [fixedLimit] : planLimits!.Values.ToArray();
        if (limits.Any(l => l.Algorithm == LimitAlgorithm.Concurrency))
        {
            reader.Error(costNode, $"{field}.cost", "a concurrency limit counts requests in flight; a cost settled from the response needs a rate or a quota.");
            return false;
        }

        if (limits.Any(l => l.Algorithm == LimitAlgorithm.SlidingLog))
        {
            reader.Error(costNode, $"{field}.cost", "a sliding_log keeps one entry per unit at its time and settles no cost afterwards; a cost settled from the response needs gcra, a window or a quota.");
            return false;
        }

        if (costs.Measure != Floodgate.Costs.CostMeasure.Money)
        {
            return true;
        }

        try
        {
            fixedLimit = fixedLimit is null ? null : CostSection.ToMicroUnits(fixedLimit);
            planLimits = planLimits?.ToDictionary(p => p.Key, p => CostSection.ToMicroUnits(p.Value));
            return true;
        }
        catch (Exception e) when (e is ArgumentException or OverflowException)
        {
            reader.Error(costNode, $"{field}.cost", $"the money budget in micro-units of {costs.Prices!.Currency} cannot be counted: {e.Message}");
            return false;
        }
    }

    /// <summary>The rule's <c>distinct</c> (<see cref="DistinctSection"/>): a user rule's only, and alone with the fields it reads.</summary>
    private Floodgate.Abuse.DistinctCounting? ReadDistinct(YamlMappingNode map, string field, RateLimitTier tier, List<KeyPart> key)
    {
        if (YamlReader.Get(map, "distinct") is not { } node)
        {
            return null;
        }

        if (tier != RateLimitTier.User)
        {
            reader.Error(node, $"{field}.distinct", "distinct rules are user rules: they are decided once the subject is known, beside the user tier.");
            return null;
        }

        foreach (var other in (string[])["cost", "ban", "concurrency", "burst", "calendar", "thresholds", "leased_slice", "on_failure", "max_delay", "lease_timeout"])
        {
            if (YamlReader.Get(map, other) is { } otherNode)
            {
                reader.Error(otherNode, $"{field}.{other}", $"a distinct rule counts values, not requests: '{other}' does not apply (a ban is 'distinct.action: ban').");
            }
        }

        // A user rule's key is [subject] unless it names one.
        return new DistinctSection(reader).Read(node, $"{field}.distinct", key.Count == 0 ? [KeyPart.Subject] : key);
    }

    private (RateLimitRule Rule, TimeSpan? Ban)? Refuse(YamlMappingNode map, string field, string message)
    {
        reader.Error(map, field, message);
        return null;
    }

    /// <summary>The thresholds, percentages of the limit such as <c>[80%, 100%]</c>, ascending; <see langword="null"/> for none.</summary>
    private int[]? ReadThresholds(YamlMappingNode map, string field)
    {
        var thresholds = new SortedSet<int>();
        foreach (var (text, node) in reader.StringList(map, "thresholds", field))
        {
            var digits = text.Trim().TrimEnd('%').Trim();
            if (!int.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var percent) || percent is < 1 or > 100)
            {
                reader.Error(node, $"{field}.thresholds", $"'{text}' is not a percentage of the limit from 1% to 100%, such as 80%.");
                continue;
            }

            thresholds.Add(percent);
        }

        return thresholds.Count == 0 ? null : [.. thresholds];
    }

    private List<KeyPart> ReadKey(YamlMappingNode map, string field, RateLimitTier tier)
    {
        var key = new List<KeyPart>();
        foreach (var (part, partNode) in reader.StringList(map, "key", field))
        {
            try
            {
                key.Add(KeyPart.Parse(part));
            }
            catch (FormatException e)
            {
                reader.Error(partNode, $"{field}.key", e.Message);
                continue;
            }

            if (tier == RateLimitTier.Edge && key[^1].Kind is KeyPartKind.Subject or KeyPartKind.Claim or KeyPartKind.Plan)
            {
                reader.Error(partNode, $"{field}.key", $"an edge rule cannot key on '{part}': the edge runs before identity is resolved, so the rule would never fire. Move the rule to the user tier, or key on client_ip or a header.");
            }
        }

        return key;
    }
}
