using System.Runtime.CompilerServices;
using Floodgate.Limits;
using Floodgate.Rules;

namespace Floodgate.Overrides;

/// <summary>
/// An override of one subject's limits, set at runtime: the plan it is on, whatever its token's plan claim says, and the
/// rate of any rule by name, until an optional expiry. Immutable: a change stores a new override, in one write.
/// </summary>
/// <remarks>
/// An override names a subject, or an account (<see cref="ForAccount"/>: the request's <c>account</c> claim, a JWT's
/// or an API key's). Precedence: the subject's override, then its account's, then the request's plan (the token's claim, an API key's plan), then the default
/// plan; a rule's rate in <see cref="Rates"/> replaces the rate that plan gives the rule, keeping its algorithm. Counters
/// are keyed by rule and algorithm, not by plan or rate, so a plan change keeps what the subject has used.
/// </remarks>
public sealed class RateLimitOverride
{
    /// <summary>The longest subject an override may name.</summary>
    public const int MaxSubjectLength = 256;

    /// <summary>The claim that names a request's account, which an account's override applies to.</summary>
    public const string AccountClaim = "account";

    /// <summary>
    /// What an account's store key starts with: a control character no subject a token or the admin API gives holds
    /// at its start, so an account never shares a key with a subject.
    /// </summary>
    public const string AccountKeyPrefix = "\u0001account:";

    private readonly ConditionalWeakTable<Limit, Limit> _limits = [];
    private readonly bool _hasRates;

    /// <summary>Creates an override.</summary>
    /// <param name="subject">The subject it applies to.</param>
    /// <param name="plan">The plan it puts the subject on; <see langword="null"/> to keep the request's.</param>
    /// <param name="rates">Rule names and the rate each is held to for this subject; <see langword="null"/> for none.</param>
    /// <param name="expiresAt">When it lapses; <see langword="null"/> for never.</param>
    /// <exception cref="ArgumentException">The subject is empty or longer than <see cref="MaxSubjectLength"/>, or nothing is overridden.</exception>
    public RateLimitOverride(string subject, string? plan, IReadOnlyDictionary<string, Rate>? rates = null, DateTimeOffset? expiresAt = null)
        : this(subject, false, plan, rates, expiresAt)
    {
    }

    private RateLimitOverride(string name, bool account, string? plan, IReadOnlyDictionary<string, Rate>? rates, DateTimeOffset? expiresAt)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Length > MaxSubjectLength)
        {
            throw new ArgumentException($"The {(account ? "account" : "subject")} is {name.Length} characters; at most {MaxSubjectLength}.", account ? "account" : "subject");
        }

        if (name[0] == AccountKeyPrefix[0])
        {
            throw new ArgumentException($"The {(account ? "account" : "subject")} starts with a control character.", account ? "account" : "subject");
        }

        if (plan is { Length: 0 })
        {
            throw new ArgumentException("The plan is empty; give a plan's name, or null to keep the request's.", nameof(plan));
        }

        if (plan is null && (rates is null || rates.Count == 0))
        {
            throw new ArgumentException("An override sets a plan, a rule's rate, or both.", nameof(plan));
        }

        Subject = name;
        IsAccount = account;
        Key = account ? AccountKeyPrefix + name : name;
        Plan = plan;
        Rates = rates ?? new Dictionary<string, Rate>();
        _hasRates = Rates.Count > 0;
        ExpiresAt = expiresAt;
    }

    /// <summary>An override of every subject of <paramref name="account"/> that has no override of its own.</summary>
    /// <param name="account">The account (the request's <see cref="AccountClaim"/> claim).</param>
    /// <param name="plan">The plan it puts the account's subjects on; <see langword="null"/> to keep the request's.</param>
    /// <param name="rates">Rule names and the rate each is held to; <see langword="null"/> for none.</param>
    /// <param name="expiresAt">When it lapses; <see langword="null"/> for never.</param>
    /// <exception cref="ArgumentException">The account is empty or too long, or nothing is overridden.</exception>
    public static RateLimitOverride ForAccount(string account, string? plan, IReadOnlyDictionary<string, Rate>? rates = null, DateTimeOffset? expiresAt = null) =>
        new(account, true, plan, rates, expiresAt);

    /// <summary>The store key of <paramref name="account"/>'s override (an account's keys never equal a subject's).</summary>
    public static string AccountKey(string account)
    {
        ArgumentNullException.ThrowIfNull(account);
        return AccountKeyPrefix + account;
    }

    /// <summary>Writes <paramref name="account"/>'s store key into <paramref name="destination"/>; the characters written, or -1 when it does not fit.</summary>
    public static int WriteAccountKey(ReadOnlySpan<char> account, Span<char> destination)
    {
        var length = AccountKeyPrefix.Length + account.Length;
        if (length > destination.Length)
        {
            return -1;
        }

        AccountKeyPrefix.AsSpan().CopyTo(destination);
        account.CopyTo(destination[AccountKeyPrefix.Length..]);
        return length;
    }

    /// <summary>The subject, or for an account's override (<see cref="IsAccount"/>) the account.</summary>
    public string Subject { get; }

    /// <summary>Whether it is an account's override (<see cref="ForAccount"/>) rather than a subject's.</summary>
    public bool IsAccount { get; }

    /// <summary>The key it is stored and found under: the subject, or <see cref="AccountKey"/> of the account.</summary>
    public string Key { get; }

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
        // _hasRates is a field of this object, which the lookup has just read: no other object is touched without rates.
        if (!_hasRates || !Rates.TryGetValue(rule.Name, out var rate))
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
