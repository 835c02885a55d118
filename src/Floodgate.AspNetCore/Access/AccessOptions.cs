using Floodgate.Rules;

namespace Floodgate.AspNetCore.Access;

/// <summary>
/// Who is let through without limits, and who is turned away before any work: bypass rules for an operator's own
/// services, and deny lists of addresses and subjects (docs/edge.md).
/// </summary>
public sealed class AccessOptions
{
    /// <summary>
    /// The bypass rules, in order: a request any of them matches skips that rule's tiers (the first rule that matches
    /// decides; later ones are not looked at). Bypassed requests are counted on <c>floodgate.access.bypassed</c>.
    /// </summary>
    public IList<BypassRule> Bypass { get; } = [];

    /// <summary>
    /// Client addresses and CIDR ranges answered 403 before any other work (no body read, no token checked, no store
    /// call). Matched against the client IP as the trusted proxies name it.
    /// </summary>
    public IList<string> DeniedAddresses { get; } = [];

    /// <summary>
    /// Subjects answered 403 once their token is validated (a subject is known only then), before the user tier is
    /// decided or charged. Compared as written, case-sensitively, as subjects are.
    /// </summary>
    public ISet<string> DeniedSubjects { get; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Whether nothing is configured.</summary>
    public bool IsEmpty => Bypass.Count == 0 && DeniedAddresses.Count == 0 && DeniedSubjects.Count == 0;

    /// <summary>Throws when an option is invalid, with a message naming it.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        foreach (var range in DeniedAddresses)
        {
            try
            {
                Http.TrustedProxies.ParseRange(range);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"FloodgateOptions.Access.DeniedAddresses: {e.Message}", nameof(DeniedAddresses), e);
            }
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var rule in Bypass)
        {
            ArgumentNullException.ThrowIfNull(rule);
            rule.Validate();
            if (!names.Add(rule.Name))
            {
                throw new ArgumentException($"FloodgateOptions.Access.Bypass: '{rule.Name}' names two bypass rules; give each its own name.", nameof(Bypass));
            }
        }
    }
}

/// <summary>
/// A bypass rule: requests that match any of its means (a client network, a claim value, a secret header, a client
/// certificate) skip its tiers.
/// </summary>
public sealed class BypassRule
{
    /// <summary>The fewest characters a bypass header's secret may have: shorter ones can be guessed.</summary>
    public const int MinSecretLength = 16;

    /// <summary>The rule's name, in metrics and logs.</summary>
    public required string Name { get; init; }

    /// <summary>The tiers skipped; every tier when empty.</summary>
    public IList<RateLimitTier> Tiers { get; } = [];

    /// <summary>Client addresses and CIDR ranges (the client IP as the trusted proxies name it).</summary>
    public IList<string> Networks { get; } = [];

    /// <summary>
    /// Claim values, by claim name (such as <c>azp</c> or <c>client_id</c>): a validated token whose claim has one of the
    /// values matches. A claim is known only once the token is validated, after the edge tier has been decided, so a rule
    /// with claims cannot skip the edge tier.
    /// </summary>
    public IDictionary<string, IReadOnlyList<string>> Claims { get; } = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);

    /// <summary>The header that carries a secret (<see cref="HeaderSecrets"/>); none by default.</summary>
    public string? HeaderName { get; init; }

    /// <summary>
    /// The secrets the header may carry (several while one is rotated), compared in constant time. Read them from a file or
    /// the environment, never from the policy itself. Each at least <see cref="MinSecretLength"/> characters.
    /// </summary>
    public IList<string> HeaderSecrets { get; } = [];

    /// <summary>
    /// Client certificates, by SHA-256 thumbprint (64 hexadecimal digits, colons and case ignored): a request on a TLS
    /// connection whose client presented one of them matches. The listener must ask for client certificates.
    /// </summary>
    public IList<string> CertificateThumbprints { get; } = [];

    /// <summary>Whether <paramref name="text"/> is a SHA-256 thumbprint: 64 hexadecimal digits, colons, spaces and case ignored.</summary>
    public static bool IsThumbprint(string? text) => AccessControl.NormalizeThumbprint(text) is not null;

    /// <summary>Throws when the rule is invalid, with a message naming it.</summary>
    /// <exception cref="ArgumentException">The rule is invalid.</exception>
    public void Validate()
    {
        var field = $"The bypass rule '{Name}'";
        if (!FloodgateOptions.IsValidRuleName(Name))
        {
            throw new ArgumentException($"FloodgateOptions.Access.Bypass: {FloodgateOptions.RuleNameProblem(Name ?? string.Empty)}", nameof(Name));
        }

        if (Networks.Count == 0 && Claims.Count == 0 && HeaderName is null && CertificateThumbprints.Count == 0)
        {
            throw new ArgumentException($"{field} names no means of matching: give networks, claims, a header or client certificates.", nameof(Networks));
        }

        foreach (var tier in Tiers)
        {
            if (!Enum.IsDefined(tier))
            {
                throw new ArgumentException($"{field}: {tier} is not a tier.", nameof(Tiers));
            }
        }

        if (Claims.Count > 0 && (Tiers.Count == 0 || Tiers.Contains(RateLimitTier.Edge)))
        {
            throw new ArgumentException($"{field} matches claims: a claim is known only after the token is validated, when the edge tier has been decided; list the tiers it skips without edge (user, service, global), or match by network, header or certificate.", nameof(Claims));
        }

        foreach (var range in Networks)
        {
            try
            {
                Http.TrustedProxies.ParseRange(range);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"{field}: {e.Message}", nameof(Networks), e);
            }
        }

        foreach (var (claim, values) in Claims)
        {
            if (string.IsNullOrWhiteSpace(claim) || values is null || values.Count == 0)
            {
                throw new ArgumentException($"{field}: each claim needs a name and at least one value.", nameof(Claims));
            }
        }

        if ((HeaderName is null) != (HeaderSecrets.Count == 0))
        {
            throw new ArgumentException($"{field}: a bypass header needs both HeaderName and at least one of HeaderSecrets.", nameof(HeaderName));
        }

        foreach (var secret in HeaderSecrets)
        {
            if (secret is null || secret.Length < MinSecretLength)
            {
                throw new ArgumentException($"{field}: a header secret must be at least {MinSecretLength} characters, such as the output of: openssl rand -hex 32.", nameof(HeaderSecrets));
            }
        }

        foreach (var thumbprint in CertificateThumbprints)
        {
            if (!IsThumbprint(thumbprint))
            {
                throw new ArgumentException($"{field}: '{thumbprint}' is not a SHA-256 thumbprint (64 hexadecimal digits, colons allowed).", nameof(CertificateThumbprints));
            }
        }
    }
}
