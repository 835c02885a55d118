using System.Diagnostics.Metrics;
using Floodgate.Logging;
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
/// (<see cref="IdentityErrors.KeysUnavailable"/>, retry when the next fetch is due): it may be good. A failed fetch is
/// logged at Error in one line and tried again <see cref="JwtIdentityOptions.KeyRefreshInterval"/> later, requests or
/// not; <see cref="KeyStatus"/> says where the keys stand, for a health check, and <see cref="FetchKeysAsync"/> fetches
/// them before a host takes traffic.
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
    private readonly TokenCache _cache;
    private readonly KeySnapshot? _staticSnapshot;
    private KeySnapshot? _remoteSnapshot;
    private int _disposed;

    /// <summary>Creates a resolver.</summary>
    /// <param name="options">The options; validated here.</param>
    /// <param name="timeProvider">The clock for token lifetimes, the token cache, the refresh interval and the log budget; the system clock by default.</param>
    /// <param name="logger">Where key fetch failures and rejections are logged (rejections within a budget, as the engine's).</param>
    /// <param name="meterFactory">Creates the <c>Floodgate</c> meter; a shared static meter by default.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names each bad field.</exception>
    public JwtIdentityResolver(IOptions<JwtIdentityOptions> options, TimeProvider? timeProvider = null, ILogger<JwtIdentityResolver>? logger = null, IMeterFactory? meterFactory = null)
        : this((options ?? throw new ArgumentNullException(nameof(options))).Value, timeProvider, logger, meterFactory, previous: null)
    {
    }

    /// <summary>
    /// Creates a resolver that takes over <paramref name="previous"/>'s remote key source when <paramref name="settings"/>
    /// name the same one (same URL, fetched the same way): its keys, its refresh schedule and its outage state, so that new
    /// settings of another kind (clock skew, audiences, claims…) take effect without fetching the keys again, and without
    /// losing them when the identity provider is down. Each resolver releases the shared source when disposed.
    /// </summary>
    /// <remarks>
    /// For a host that reloads its identity settings, as the gateway does with its policy: it builds the next resolver
    /// from the one in force, puts it in force, then disposes the previous one. <see cref="SharesKeySourceWith"/> tells
    /// whether the keys came along or must be fetched (<see cref="FetchKeysAsync"/>). A factory rather than a constructor,
    /// so that dependency injection has one constructor to choose.
    /// </remarks>
    /// <param name="settings">The options; validated here, and copied: later changes to them do not change the resolver.</param>
    /// <param name="previous">The resolver these settings replace, whose remote key source is taken over when it is the same; <see langword="null"/> for none.</param>
    /// <param name="timeProvider">The clock for token lifetimes, the token cache, the refresh interval and the log budget; the system clock by default.</param>
    /// <param name="logger">Where key fetch failures and rejections are logged (rejections within a budget, as the engine's).</param>
    /// <param name="meterFactory">Creates the <c>Floodgate</c> meter; a shared static meter by default.</param>
    /// <returns>The resolver.</returns>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names each bad field.</exception>
    public static JwtIdentityResolver Create(JwtIdentityOptions settings, JwtIdentityResolver? previous, TimeProvider? timeProvider = null, ILogger<JwtIdentityResolver>? logger = null, IMeterFactory? meterFactory = null) =>
        new(settings, timeProvider, logger, meterFactory, previous);

    /// <summary>Creates a resolver; see <see cref="Create"/>.</summary>
    internal JwtIdentityResolver(JwtIdentityOptions settings, TimeProvider? timeProvider, ILogger? logger, IMeterFactory? meterFactory, JwtIdentityResolver? previous)
    {
        ArgumentNullException.ThrowIfNull(settings);
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

        if (RemoteKeySource.IsNamedIn(settings))
        {
            _remote = previous?._remote is { } shared && shared.Serves(settings) && shared.TryShare()
                ? shared
                : new RemoteKeySource(settings, _time, _logger, _metrics);
        }

        // The static keys alone: all the keys without a remote source, and the keys in force while it has none.
        if (_remote is null || _staticKeys.Count > 0)
            _staticSnapshot = NewSnapshot(null, _staticKeys);
    }

    /// <summary>How many tokens went through full validation; the rest were answered from the cache or refused earlier.</summary>
    internal long SignatureChecks => _metrics.SignatureChecks;

    /// <summary>How many validated tokens are cached.</summary>
    internal int CachedTokens => _cache.Count;

    /// <summary>
    /// Where the identity provider's signing keys stand (<see cref="JwtIdentityOptions.Authority"/> or
    /// <see cref="JwtIdentityOptions.JwksUri"/>): when they were fetched, and whether the last attempt failed, why, and when
    /// the next one is. <see langword="null"/> without a remote key source (static keys only). For health checks: while
    /// <see cref="SigningKeyStatus.HasKeys"/> is <see langword="false"/>, tokens only those keys could verify are answered
    /// <see cref="IdentityStatus.Unavailable"/>.
    /// </summary>
    public SigningKeyStatus? KeyStatus => _remote?.Status;

    /// <summary>
    /// Whether this resolver and <paramref name="other"/> share one remote key source, its keys and schedule: a resolver
    /// created with <paramref name="other"/> as its previous one that took its source over. A host then has no keys to wait for.
    /// </summary>
    /// <param name="other">Another resolver; <see langword="null"/> shares nothing.</param>
    public bool SharesKeySourceWith(JwtIdentityResolver? other) => _remote is not null && ReferenceEquals(_remote, other?._remote);

    /// <summary>
    /// Fetches the identity provider's signing keys now, unless they are in hand or a fetch failed less than
    /// <see cref="JwtIdentityOptions.KeyRefreshInterval"/> ago, and waits for that fetch; cancelling stops the wait, not
    /// the fetch. A host calls it before it takes traffic, so that the first requests wait for no fetch and its health
    /// check can tell whether the keys can be had.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns><see cref="KeyStatus"/> once the fetch is done: <see cref="SigningKeyStatus.HasKeys"/> when it succeeded.</returns>
    public async Task<SigningKeyStatus?> FetchKeysAsync(CancellationToken cancellationToken)
    {
        if (_remote is null)
            return null;
        if (!_remote.Status.HasKeys)
            await _remote.GetAsync(CancellationToken.None).AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        return _remote.Status;
    }

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

    /// <summary>
    /// Releases the remote key source: the last resolver using it stops its retries and disposes the metadata HTTP client
    /// it created, if any.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _remote?.Dispose();
    }

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
