using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;

namespace Floodgate.Rules;

/// <summary>
/// One rule: which requests it applies to, how it keys them, and the limit each key is held to, fixed or by plan.
/// </summary>
public sealed class RateLimitRule
{
    private readonly long _cost = 1;
    private readonly IReadOnlyList<KeyPart>? _key;
    private IReadOnlyList<KeyPart>? _defaultKey;
    private readonly long[] _keySeeds;
    private readonly StoreFailureMode _onStoreFailure;

    /// <summary>Creates a rule with one limit for every request.</summary>
    public RateLimitRule(string name, RateLimitTier tier, Limit limit)
        : this(name, tier)
    {
        ArgumentNullException.ThrowIfNull(limit);
        Limit = limit;
    }

    /// <summary>
    /// Creates a rule whose limit depends on the request's plan. A request with no plan, or an unknown one, uses
    /// <paramref name="defaultPlan"/>; a plan with no limit here is not limited by this rule.
    /// </summary>
    public RateLimitRule(string name, RateLimitTier tier, IReadOnlyDictionary<string, Limit> planLimits, string? defaultPlan)
        : this(name, tier)
    {
        ArgumentNullException.ThrowIfNull(planLimits);
        if (planLimits.Count == 0)
        {
            throw new ArgumentException($"The rule '{name}' needs at least one plan limit.", nameof(planLimits));
        }

        PlanLimits = planLimits;
        DefaultPlan = defaultPlan;
    }

    private Costs.RuleCost? _costs;

    private RateLimitRule(string name, RateLimitTier tier)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!Enum.IsDefined(tier))
        {
            throw new ArgumentOutOfRangeException(nameof(tier), tier, "Unknown tier.");
        }

        Name = name;
        Tier = tier;
        _keySeeds = [.. Enum.GetValues<LimitAlgorithm>().Select(a => KeyHasher.Seed(name, a))];
    }

    /// <summary>The rule's name, unique in its policy: it names the rule in headers, logs, metrics and store keys.</summary>
    public string Name { get; }

    /// <summary>The tier.</summary>
    public RateLimitTier Tier { get; }

    /// <summary>The fixed limit, or <see langword="null"/> when the limit depends on the plan.</summary>
    public Limit? Limit { get; }

    /// <summary>The limit of each plan, or <see langword="null"/> for a fixed limit.</summary>
    public IReadOnlyDictionary<string, Limit>? PlanLimits { get; }

    /// <summary>The plan of requests that name none, or an unknown one.</summary>
    public string? DefaultPlan { get; }

    /// <summary>Which requests the rule applies to. Default: every request.</summary>
    public RuleMatch Match { get; init; } = RuleMatch.Any;

    /// <summary>
    /// What the key is made of. Default by tier: edge <c>[client_ip]</c>, user <c>[subject]</c>, service <c>[route]</c>,
    /// global <c>[]</c> (one key for everything).
    /// </summary>
    public IReadOnlyList<KeyPart> Key
    {
        get => _key ?? (_defaultKey ??= DefaultKey(Tier));
        init => _key = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>What one request costs. Default 1; 0 counts nothing.</summary>
    public long Cost
    {
        get => _cost;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _cost = value;
        }
    }

    /// <summary>
    /// When the cost is known only once the response ends (LLM tokens, money): what the rule reserves at admission and how
    /// it settles (<see cref="Costs.RuleCost"/>). Replaces <see cref="Cost"/>. Default: none, every request costs
    /// <see cref="Cost"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The rule's limit (or a plan's) is a sliding log, whose entries are not settled.</exception>
    public Costs.RuleCost? Costs
    {
        get => _costs;
        init
        {
            if (value is not null && (Limit?.Algorithm == LimitAlgorithm.SlidingLog || (PlanLimits?.Values.Any(l => l.Algorithm == LimitAlgorithm.SlidingLog) ?? false)))
            {
                throw new ArgumentException($"The rule '{Name}' counts with sliding_log, which keeps one entry per unit at its time and settles no cost afterwards: use gcra or a window for costs settled from usage.", nameof(value));
            }

            _costs = value;
        }
    }

    /// <summary>
    /// Percentages of the limit (1 to 100, such as 80 and 100) whose crossing by a subject raises a threshold event
    /// (<see cref="Events.IThresholdObserver"/>), at most once per subject and period; <see langword="null"/> for none.
    /// Read from what each admitted decision already returns: no store call of its own.
    /// </summary>
    public IReadOnlyList<int>? Thresholds { get; init; }

    /// <summary>
    /// Makes the rule count distinct values of one key part per key (<see cref="Abuse.DistinctCounting"/>): its fixed
    /// limit is then the most distinct values a key may show in a window of the limit's period. Such a rule is decided
    /// by <see cref="Engine.RateLimitEngine.CountDistinctAsync"/>, not with the tiers. Default: none.
    /// </summary>
    /// <exception cref="ArgumentException">The rule's limit depends on the plan.</exception>
    public Abuse.DistinctCounting? Distinct
    {
        get;
        init
        {
            if (value is not null && Limit is null)
            {
                throw new ArgumentException($"The distinct rule '{Name}' needs one fixed limit, the most distinct values a key may show in a window.", nameof(value));
            }

            field = value;
        }
    }

    /// <summary>Whether the rule enforces or only observes.</summary>
    public RuleMode Mode { get; init; } = RuleMode.Enforce;

    /// <summary>
    /// How the rule's checks are answered while a remote store cannot be reached, such as closed for a global ceiling
    /// that protects a fragile backend while the user tiers stay open. Default: as the store is configured.
    /// </summary>
    public StoreFailureMode OnStoreFailure
    {
        get => _onStoreFailure;
        init
        {
            if (!Enum.IsDefined(value))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "The failure mode must be default, open, closed or local.");
            }

            _onStoreFailure = value;
        }
    }

    /// <summary>The limit for a request of <paramref name="plan"/>; <see langword="null"/> when the plan is not limited by this rule.</summary>
    public Limit? LimitFor(string? plan)
    {
        if (Limit is not null)
        {
            return Limit;
        }

        if (plan is not null && PlanLimits!.TryGetValue(plan, out var limit))
        {
            return limit;
        }

        return DefaultPlan is not null && PlanLimits!.TryGetValue(DefaultPlan, out limit) ? limit : null;
    }

    internal long KeySeed(LimitAlgorithm algorithm) => _keySeeds[(int)algorithm];

    /// <inheritdoc/>
    public override string ToString() => $"{Tier.ToString().ToLowerInvariant()}/{Name}";

    private static readonly KeyPart[][] DefaultKeys = [[KeyPart.ClientIp], [KeyPart.Subject], [KeyPart.Route], []];

    private static IReadOnlyList<KeyPart> DefaultKey(RateLimitTier tier) => Array.AsReadOnly(DefaultKeys[(int)tier]);
}
