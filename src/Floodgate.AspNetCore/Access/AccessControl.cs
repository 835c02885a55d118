using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Floodgate.AspNetCore.Identity;
using Floodgate.AspNetCore.Middleware;
using Floodgate.Rules;
using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Access;

/// <summary>What the access lists say of a request.</summary>
internal enum AccessVerdict
{
    /// <summary>Nothing: the request is limited as usual.</summary>
    None,

    /// <summary>A bypass rule matched: the request is decided on that rule's settings, without its tiers.</summary>
    Bypassed,

    /// <summary>A deny list holds the client address or the subject: answered 403.</summary>
    Denied,
}

/// <summary>
/// The access lists compiled from <see cref="AccessOptions"/>: the deny lists, and each bypass rule with the settings a
/// request it matches is decided on (the policy without the rule's tiers). Asked twice per request: before anything
/// else (addresses, the bypass header, the client certificate), and once the identity is known (subjects, claims).
/// </summary>
internal sealed class AccessControl
{
    private static readonly Meter Meter = new("Floodgate.AspNetCore");
    private static readonly Counter<long> BypassedCounter = Meter.CreateCounter<long>("floodgate.access.bypassed", "{request}", "Requests that skipped tiers by a bypass rule, by rule and means (network, header, certificate, claim).");
    private static readonly Counter<long> DeniedCounter = Meter.CreateCounter<long>("floodgate.access.denied", "{request}", "Requests answered 403 by a deny list, by reason (address, subject).");

    private readonly AddressSet _deniedAddresses;
    private readonly HashSet<string> _deniedSubjects;
    private readonly Bypass[] _bypass;
    private readonly bool _bypassBeforeIdentity;

    private AccessControl(AccessOptions options)
    {
        _deniedAddresses = new AddressSet(options.DeniedAddresses);
        _deniedSubjects = new HashSet<string>(options.DeniedSubjects, StringComparer.Ordinal);
        _bypass = [.. options.Bypass.Select(r => new Bypass(r))];
        _bypassBeforeIdentity = _bypass.Any(b => b.BeforeIdentity);
        ChecksIdentity = _deniedSubjects.Count > 0 || _bypass.Any(b => b.Claims.Length > 0);
    }

    /// <summary>Whether a subject or a claim is looked at once the identity is known.</summary>
    public bool ChecksIdentity { get; }

    /// <summary>The access lists of <paramref name="options"/>, bound to <paramref name="settings"/>; <see langword="null"/> when there are none.</summary>
    public static AccessControl? Compile(AccessOptions options, CompiledSettings settings)
    {
        if (options.IsEmpty)
        {
            return null;
        }

        var access = new AccessControl(options);
        var bound = settings with { Access = access };
        foreach (var bypass in access._bypass)
        {
            bypass.Settings = Without(bound, bypass.Tiers);
        }

        return access;
    }

    /// <summary>
    /// Looks at what is known before any work: the client address against the deny list, then the bypass rules' networks,
    /// header and client certificate.
    /// </summary>
    /// <param name="context">The request.</param>
    /// <param name="clientIp">The client IP, as the trusted proxies name it.</param>
    /// <param name="settings">The settings to decide on: replaced by the bypass rule's when one matches.</param>
    public AccessVerdict BeforeIdentity(HttpContext context, IPAddress? clientIp, ref CompiledSettings settings)
    {
        if (clientIp is not null && !_deniedAddresses.IsEmpty && _deniedAddresses.Contains(clientIp))
        {
            DeniedCounter.Add(1, new KeyValuePair<string, object?>("reason", "address"));
            return AccessVerdict.Denied;
        }

        if (!_bypassBeforeIdentity)
        {
            return AccessVerdict.None;
        }

        foreach (var bypass in _bypass)
        {
            if (bypass.MatchBeforeIdentity(context, clientIp) is { } means)
            {
                Count(bypass, means);
                settings = bypass.Settings!;
                return AccessVerdict.Bypassed;
            }
        }

        return AccessVerdict.None;
    }

    /// <summary>
    /// Looks at the validated identity: the subject against the deny list, then the bypass rules' claims, unless a bypass
    /// rule matched already (<paramref name="bypassed"/>).
    /// </summary>
    public AccessVerdict AfterIdentity(in IdentityResult identity, bool bypassed, ref CompiledSettings settings)
    {
        if (identity.Status != IdentityStatus.Valid)
        {
            return AccessVerdict.None;
        }

        if (_deniedSubjects.Count > 0 && identity.Subject is { } subject && _deniedSubjects.Contains(subject))
        {
            DeniedCounter.Add(1, new KeyValuePair<string, object?>("reason", "subject"));
            return AccessVerdict.Denied;
        }

        if (bypassed || identity.Claims is not { } claims)
        {
            return AccessVerdict.None;
        }

        foreach (var bypass in _bypass)
        {
            if (bypass.MatchClaims(claims))
            {
                Count(bypass, "claim");
                settings = bypass.Settings!;
                return AccessVerdict.Bypassed;
            }
        }

        return AccessVerdict.None;
    }

    /// <summary>A SHA-256 thumbprint as 32 bytes, colons, spaces and case ignored; <see langword="null"/> when it is not one.</summary>
    internal static byte[]? NormalizeThumbprint(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var hex = text.Replace(":", string.Empty, StringComparison.Ordinal).Replace(" ", string.Empty, StringComparison.Ordinal);
        if (hex.Length != 64)
        {
            return null;
        }

        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static void Count(Bypass bypass, string means) =>
        BypassedCounter.Add(1, new KeyValuePair<string, object?>("rule", bypass.Name), new KeyValuePair<string, object?>("means", means));

    /// <summary>
    /// <paramref name="settings"/> without the rules of <paramref name="tiers"/> (nor, when the edge is skipped, its bans).
    /// Rules keep their names, so a rule of a tier that is not skipped shares its counts with requests that are not bypassed.
    /// </summary>
    private static CompiledSettings Without(CompiledSettings settings, RateLimitTier[] tiers)
    {
        var source = settings.Policy;
        var policy = new RateLimitPolicy(source.Rules.Where(r => Array.IndexOf(tiers, r.Tier) < 0))
        {
            ShadowAll = source.ShadowAll,
            Ipv6PrefixLength = source.Ipv6PrefixLength,
        };
        var skipsEdge = Array.IndexOf(tiers, RateLimitTier.Edge) >= 0;
        return settings with
        {
            Policy = policy,
            Bans = skipsEdge ? [] : settings.Bans,
            HasEdgeRules = !policy.RulesOf(RateLimitTier.Edge).IsEmpty,
        };
    }

    /// <summary>One bypass rule, compiled.</summary>
    private sealed class Bypass
    {
        private readonly AddressSet _networks;
        private readonly string? _header;
        private readonly byte[][] _secretHashes;
        private readonly byte[][] _thumbprints;

        public Bypass(BypassRule rule)
        {
            Name = rule.Name;
            Tiers = rule.Tiers.Count == 0 ? Enum.GetValues<RateLimitTier>() : [.. rule.Tiers.Distinct()];
            _networks = new AddressSet(rule.Networks);
            Claims = [.. rule.Claims.Select(c => (c.Key, new HashSet<string>(c.Value, StringComparer.Ordinal)))];
            _header = rule.HeaderName;

            // Compared as SHA-256 digests: equal lengths, so the comparison's time tells nothing of the secret's length either.
            _secretHashes = [.. rule.HeaderSecrets.Select(s => SHA256.HashData(Encoding.UTF8.GetBytes(s)))];
            _thumbprints = [.. rule.CertificateThumbprints.Select(t => NormalizeThumbprint(t)!)];
            BeforeIdentity = !_networks.IsEmpty || _header is not null || _thumbprints.Length > 0;
        }

        public string Name { get; }

        public RateLimitTier[] Tiers { get; }

        public (string Claim, HashSet<string> Values)[] Claims { get; }

        public bool BeforeIdentity { get; }

        public CompiledSettings? Settings { get; set; }

        /// <summary>The means by which the request matches before identity: network, header or certificate; <see langword="null"/> for none.</summary>
        public string? MatchBeforeIdentity(HttpContext context, IPAddress? clientIp)
        {
            if (clientIp is not null && !_networks.IsEmpty && _networks.Contains(clientIp))
            {
                return "network";
            }

            if (_header is not null && context.Request.Headers.TryGetValue(_header, out var values) && values.Count == 1 && MatchesSecret(values[0]))
            {
                return "header";
            }

            if (_thumbprints.Length > 0 && context.Connection.ClientCertificate is { } certificate && MatchesThumbprint(certificate.GetCertHash(HashAlgorithmName.SHA256)))
            {
                return "certificate";
            }

            return null;
        }

        public bool MatchClaims(System.Security.Claims.ClaimsIdentity claims)
        {
            foreach (var (claim, accepted) in Claims)
            {
                foreach (var found in claims.FindAll(claim))
                {
                    if (accepted.Contains(found.Value))
                    {
                        return true;
                    }
                }
            }

            return false;
        }

        private bool MatchesSecret(string? value)
        {
            if (string.IsNullOrEmpty(value) || value.Length > 1024)
            {
                return false;
            }

            Span<byte> digest = stackalloc byte[32];
            var length = Encoding.UTF8.GetMaxByteCount(value.Length);
            var bytes = length <= 1024 ? stackalloc byte[length] : new byte[length];
            SHA256.HashData(bytes[..Encoding.UTF8.GetBytes(value, bytes)], digest);

            // Every secret is compared, whichever matches, so the time does not tell which one did.
            var match = false;
            foreach (var hash in _secretHashes)
            {
                match |= CryptographicOperations.FixedTimeEquals(digest, hash);
            }

            return match;
        }

        private bool MatchesThumbprint(byte[] hash)
        {
            foreach (var thumbprint in _thumbprints)
            {
                if (hash.AsSpan().SequenceEqual(thumbprint))
                {
                    return true;
                }
            }

            return false;
        }
    }
}
