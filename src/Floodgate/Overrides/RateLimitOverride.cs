using System.Runtime.CompilerServices;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Overrides;

/// <summary>
/// An override of one subject's limits, set at runtime: the plan it is on, whatever its token's plan claim says, and the
/// rate of any rule by name, until an optional expiry. Immutable: a change stores a new override, in one write.
/// </summary>
/// <remarks>
/// Precedence: the override's plan, then the request's plan (the token's claim, an API key's plan), then the default
/// plan; a rule's rate in <see cref="Rates"/> replaces the rate that plan gives the rule, keeping its algorithm. Counters
/// are keyed by rule and algorithm, not by plan or rate, so a plan change keeps what the subject has used.
/// </remarks>
public sealed class RateLimitOverride
{
    /// <summary>The longest subject an override may name.</summary>
    public const int MaxSubjectLength = 256;

    private readonly ConditionalWeakTable<Limit, Limit> _limits = [];

    /// <summary>Creates an override.</summary>
    /// <param name="subject">The subject it applies to.</param>
    /// <param name="plan">The plan it puts the subject on; <see langword="null"/> to keep the request's.</param>
    /// <param name="rates">Rule names and the rate each is held to for this subject; <see langword="null"/> for none.</param>
    /// <param name="expiresAt">When it lapses; <see langword="null"/> for never.</param>
    /// <exception cref="ArgumentException">The subject is empty or longer than <see cref="MaxSubjectLength"/>, or nothing is overridden.</exception>
    public RateLimitOverride(string subject, string? plan, IReadOnlyDictionary<string, Rate>? rates = null, DateTimeOffset? expiresAt = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        if (subject.Length > MaxSubjectLength)
        {
            throw new ArgumentException($"The subject is {subject.Length} characters; at most {MaxSubjectLength}.", nameof(subject));
        }

        if (plan is { Length: 0 })
        {
            throw new ArgumentException("The plan is empty; give a plan's name, or null to keep the request's.", nameof(plan));
        }

        if (plan is null && (rates is null || rates.Count == 0))
        {
            throw new ArgumentException("An override sets a plan, a rule's rate, or both.", nameof(plan));
        }

        Subject = subject;
        Plan = plan;
        Rates = rates ?? new Dictionary<string, Rate>();
        ExpiresAt = expiresAt;
    }

    /// <summary>The subject.</summary>
    public string Subject { get; }

    /// <summary>The plan; <see langword="null"/> to keep the request's.</summary>
    public string? Plan { get; }

    /// <summary>Rule names and the rate each is held to for this subject.</summary>
    public IReadOnlyDictionary<string, Rate> Rates { get; }

    /// <summary>When it lapses; <see langword="null"/> for never.</summary>
    public DateTimeOffset? ExpiresAt { get; }

    /// <summary>Whether it has lapsed at <paramref name="now"/>.</summary>
    public bool IsExpired(DateTimeOffset now) => ExpiresAt is { } at && at <= now;

    /// <summary>
    /// The limit <paramref name="rule"/> holds this subject to: <paramref name="planLimit"/> (the limit of the plan in
    /// force), or the rule's limit at this override's rate. Built once per limit and kept, so a decision allocates nothing.
    /// </summary>
    public Limit? LimitFor(RateLimitRule rule, Limit? planLimit)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (Rates.Count == 0 || !Rates.TryGetValue(rule.Name, out var rate))
        {
            return planLimit;
        }

        var basis = planLimit ?? rule.LimitFor(null) ?? rule.PlanLimits!.Values.First();
        return _limits.TryGetValue(basis, out var limit) ? limit : Build(basis, rate);
    }

    /// <summary>The limit at this override's rate, built once per basis (apart, so that the lookup captures nothing and allocates nothing).</summary>
    private Limit Build(Limit basis, Rate rate)
    {
        Limit limit;
        try
        {
            limit = basis.WithRate(rate);
        }
        catch (ArgumentException)
        {
            // A rate the rule's algorithm refuses (checked when the override was set, against the policy then): the
            // policy's limit stands rather than failing requests.
            limit = basis;
        }

        _limits.TryAdd(basis, limit);
        return _limits.TryGetValue(basis, out var stored) ? stored : limit;
    }
}
