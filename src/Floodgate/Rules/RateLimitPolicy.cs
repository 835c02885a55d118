namespace Floodgate.Rules;

/// <summary>Every rule a front door enforces, by tier, with the settings that apply to all of them. Immutable; a reload builds a new one.</summary>
public sealed class RateLimitPolicy
{
    private readonly RateLimitRule[][] _byTier;
    private readonly RateLimitRule[] _distinct;

    /// <summary>Creates a policy.</summary>
    /// <exception cref="ArgumentException">Two rules share a name.</exception>
    public RateLimitPolicy(IEnumerable<RateLimitRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        Rules = [.. rules];
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var rule in Rules)
        {
            if (!names.Add(rule.Name))
            {
                throw new ArgumentException($"Two rules are named '{rule.Name}'; rule names must be unique.", nameof(rules));
            }
        }

        _byTier = new RateLimitRule[Enum.GetValues<RateLimitTier>().Length][];
        foreach (var tier in Enum.GetValues<RateLimitTier>())
        {
            _byTier[(int)tier] = [.. Rules.Where(r => r.Tier == tier && r.Distinct is null)];
        }

        _distinct = [.. Rules.Where(r => r.Distinct is not null)];
    }

    /// <summary>A policy with no rules: every request passes.</summary>
    public static RateLimitPolicy Empty { get; } = new([]);

    /// <summary>Every rule, in the order given.</summary>
    public IReadOnlyList<RateLimitRule> Rules { get; }

    /// <summary>Runs every rule in shadow mode: counted, logged and measured, never rejecting.</summary>
    public bool ShadowAll { get; init; }

    /// <summary>
    /// How many leading bits of an IPv6 client address name the client in <see cref="KeyPartKind.ClientIp"/> keys.
    /// Default 64: one host usually owns a whole /64 and could otherwise rotate through it.
    /// </summary>
    public int Ipv6PrefixLength
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 8);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 128);
            field = value;
        }
    } = 64;

    /// <summary>The rules that count distinct values (<see cref="RateLimitRule.Distinct"/>), decided apart from the tiers.</summary>
    public ReadOnlySpan<RateLimitRule> DistinctRules => _distinct;

    /// <summary>The rules of one tier, without its distinct rules.</summary>
    public ReadOnlySpan<RateLimitRule> RulesOf(RateLimitTier tier) => _byTier[(int)tier];
}
