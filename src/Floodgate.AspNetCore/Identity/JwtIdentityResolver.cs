using System.Diagnostics.Metrics;
using Floodgate.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Resolves identity from a Bearer JWT: validates signature, algorithm, issuer, audience and lifetime with
/// Microsoft.IdentityModel, and names the stable subject and the plan from the token's claims.
/// </summary>
/// <remarks>
/// <para>
/// No Authorization header resolves to <see cref="IdentityResult.Anonymous"/>. Any defect resolves to
/// <see cref="IdentityResult.Invalid"/> with <see cref="IdentityErrors.InvalidToken"/> and one of the short descriptions
/// of <see cref="IdentityErrors"/>. While the remote keys (<see cref="JwtIdentityOptions.Authority"/> or
/// <see cref="JwtIdentityOptions.JwksUri"/>) have never been fetched because the identity provider is down, the static
/// keys validate alone, and a token none of them verifies resolves to <see cref="IdentityResult.Unavailable"/>
/// (<see cref="IdentityErrors.KeysUnavailable"/>, retry when the next fetch is due): it may be good.
/// </para>
/// <para>
/// Signing keys are cached; a token naming an unknown <c>kid</c> refreshes them at most once per
/// <see cref="JwtIdentityOptions.KeyRefreshInterval"/>, so forged <c>kid</c>s cannot cause a fetch storm. A key with a
/// <c>kid</c> is tried only for a token naming it (or naming none); keys without one (PEM keys, the secret) are tried for
/// a token of any <c>kid</c>, so a forged <c>kid</c> costs one signature check per such key, and none without them. Validated
/// tokens are cached by SHA-256 hash until their expiry, bounded by <see cref="JwtIdentityOptions.TokenCacheSize"/>, so
/// a repeated token costs no signature check; <see cref="TryResolveCached"/> answers such a token (and a request without
/// credentials) without any wait, so the middleware can decide all the tiers of the request at once.
/// </para>
/// <para>
/// Reports on the <c>Floodgate</c> meter: <c>floodgate.identity.validations</c> (tagged <c>outcome</c>),
/// <c>floodgate.identity.token_cache.hits</c> and <c>floodgate.identity.key_refreshes</c> (tagged <c>outcome</c>).
/// Thread-safe.
/// </para>
/// </remarks>
public sealed partial class JwtIdentityResolver : IIdentityResolver, IDisposable
{
    private static readonly IdentityResult Malformed = IdentityResult.Invalid(IdentityErrors.InvalidToken, IdentityErrors.Malformed);

    private readonly string? _authority;
    private readonly string[] _issuers;
    private readonly string[] _audiences;
    private readonly TimeSpan _clockSkew;
    private readonly string _planClaim;
    private readonly string? _defaultPlan;
    private readonly bool _cacheTokens;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IdentityMetrics _metrics;
    private readonly LogBudget _logBudget;
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly HashSet<string> _algorithms;
    private readonly string[] _subjectClaims;
    private readonly List<SecurityKey> _staticKeys;
    private readonly RemoteKeySource? _remote;
    private readonly HttpClient? _ownedBackchannel;
    private readonly TokenCache _cache;
    private readonly KeySnapshot? _staticSnapshot;
    private KeySnapshot? _remoteSnapshot;

    /// <summary>Creates a resolver.</summary>
    /// <param name="options">The options; validated here.</param>
    /// <param name="timeProvider">The clock for token lifetimes, the token cache, the refresh interval and the log budget; the system clock by default.</param>
    /// <param name="logger">Where key fetch failures and rejections are logged (rejections within a budget, as the engine's).</param>
    /// <param name="meterFactory">Creates the <c>Floodgate</c> meter; a shared static meter by default.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names each bad field.</exception>
    public JwtIdentityResolver(IOptions<JwtIdentityOptions> options, TimeProvider? timeProvider = null, ILogger<JwtIdentityResolver>? logger = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var settings = options.Value;
        var errors = JwtIdentityOptionsValidator.Check(settings);
        if (errors.Count > 0)
            throw new OptionsValidationException(Options.DefaultName, typeof(JwtIdentityOptions), errors);

        // Copied, so that later changes to the options object cannot change a running resolver.
        _authority = string.IsNullOrWhiteSpace(settings.Authority) ? null : settings.Authority;
        _issuers = [.. settings.Issuers];
        _audiences = [.. settings.Audiences];
        _clockSkew = settings.ClockSkew;
        _planClaim = settings.PlanClaim;
        _defaultPlan = settings.DefaultPlan;
        _cacheTokens = settings.TokenCacheSize > 0;

        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _metrics = new IdentityMetrics(meterFactory);
        _logBudget = new LogBudget(_time);
        _algorithms = new HashSet<string>(settings.EffectiveAlgorithms, StringComparer.Ordinal);
        _subjectClaims = [.. settings.EffectiveSubjectClaims];
        _staticKeys = StaticKeys.Load(settings, errors);
        _cache = new TokenCache(settings.TokenCacheSize);

        if (_authority is not null || !string.IsNullOrWhiteSpace(settings.JwksUri))
        {
            var backchannel = settings.Backchannel;
            if (backchannel is null)
                backchannel = _ownedBackchannel = new HttpClient { Timeout = settings.BackchannelTimeout };
            _remote = new RemoteKeySource(settings, backchannel, _time, _logger, _metrics);
        }

        // The static keys alone: all the keys without a remote source, and the keys in force while it has none.
        if (_remote is null || _staticKeys.Count > 0)
            _staticSnapshot = NewSnapshot(null, _staticKeys);
    }

    /// <summary>How many tokens went through full validation; the rest were answered from the cache or refused earlier.</summary>
    internal long SignatureChecks => _metrics.SignatureChecks;

    /// <summary>How many validated tokens are cached.</summary>
    internal int CachedTokens => _cache.Count;

    /// <inheritdoc />
    public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var values = context.Request.Headers.Authorization;
        if (values.Count == 0)
            return ResolveAuthorizationAsync(null, cancellationToken);
        if (values.Count > 1)
            return new(Reject(Malformed, "malformed"));
        return ResolveAuthorizationAsync(values[0], cancellationToken);
    }

    /// <summary>
    /// Resolves the identity without a signature check or I/O: <see cref="IdentityResult.Anonymous"/> without an
    /// Authorization header (or with a blank one), <see cref="IdentityStatus.Valid"/> for a Bearer token validated
    /// earlier and still in the validated-token cache.
    /// </summary>
    /// <remarks>
    /// Anything else (a token not cached or expired, another scheme, a malformed value, several Authorization headers)
    /// returns <see langword="false"/>: <see cref="ResolveAsync"/> answers it, after the edge tier. An answer is counted
    /// like one from <see cref="ResolveAsync"/> (<c>floodgate.identity.validations</c>, and a token cache hit).
    /// </remarks>
    /// <inheritdoc />
    public bool TryResolveCached(HttpContext context, out IdentityResult identity)
    {
        ArgumentNullException.ThrowIfNull(context);
        var values = context.Request.Headers.Authorization;
        if (values.Count <= 1)
        {
            switch (ReadCredential(values.Count == 0 ? null : values[0], out var token))
            {
                case Credential.None:
                    identity = ResolveAnonymous();
                    return true;
                case Credential.Bearer:
                    return TryGetCached(token, out _, out identity);
            }
        }

        identity = default;
        return false;
    }

    /// <summary>
    /// Resolves the identity of an Authorization header value, for front doors without an <see cref="HttpContext"/>.
    /// </summary>
    /// <param name="authorization">The header value, such as <c>Bearer eyJ…</c>; <see langword="null"/> or blank when absent.</param>
    /// <param name="cancellationToken">Cancels waiting for signing keys.</param>
    /// <returns>The identity: valid, anonymous (no credentials), invalid with the reason, or unavailable (cannot be checked now).</returns>
    public ValueTask<IdentityResult> ResolveAuthorizationAsync(string? authorization, CancellationToken cancellationToken)
    {
        switch (ReadCredential(authorization, out var token))
        {
            case Credential.None:
                return new(ResolveAnonymous());
            case Credential.WrongScheme:
                return new(Reject(IdentityErrors.WrongScheme, "scheme"));
            case Credential.Malformed:
                return new(Reject(Malformed, "malformed"));
        }

        if (TryGetCached(token, out var hash, out var cached))
            return new(cached);
        return new(ValidateAsync(token.ToString(), hash, cancellationToken));
    }

    /// <summary>Disposes the metadata HTTP client the resolver created, if any.</summary>
    public void Dispose() => _ownedBackchannel?.Dispose();

    /// <summary>What an Authorization header value holds; for <see cref="Credential.Bearer"/>, the token.</summary>
    private static Credential ReadCredential(string? authorization, out ReadOnlySpan<char> token)
    {
        token = default;
        var header = authorization.AsSpan().Trim();
        if (header.IsEmpty)
            return Credential.None;

        var space = header.IndexOfAny(' ', '\t');
        var scheme = space < 0 ? header : header[..space];
        if (!scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            return Credential.WrongScheme;
        token = space < 0 ? default : header[(space + 1)..].Trim();
        return token.IsEmpty ? Credential.Malformed : Credential.Bearer;
    }

    private IdentityResult ResolveAnonymous()
    {
        _metrics.Outcome("anonymous");
        return IdentityResult.Anonymous;
    }

    /// <summary>
    /// The identity of <paramref name="token"/> when it was validated earlier and is still cached; otherwise
    /// <see langword="false"/>, with the token's <paramref name="hash"/> for caching it once validated.
    /// </summary>
    private bool TryGetCached(ReadOnlySpan<char> token, out TokenHash hash, out IdentityResult identity)
    {
        hash = default;
        if (_cacheTokens)
        {
            hash = TokenHash.Of(token);
            if (_cache.TryGet(hash, _time.GetUtcNow(), out var cached))
            {
                _metrics.CacheHit();
                _metrics.Outcome("valid");
                identity = IdentityResult.Valid(cached.Subject, cached.Plan, cached.Claims);
                return true;
            }
        }

        identity = default;
        return false;
    }

    /// <summary>What an Authorization header value holds.</summary>
    private enum Credential
    {
        /// <summary>Nothing: the request is anonymous.</summary>
        None,

        /// <summary>Another scheme than Bearer.</summary>
        WrongScheme,

        /// <summary>The Bearer scheme without a token.</summary>
        Malformed,

        /// <summary>A Bearer token.</summary>
        Bearer,
    }
}
