using System.Diagnostics.Metrics;
using System.Security.Claims;
using Floodgate.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
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

    private async Task<IdentityResult> ValidateAsync(string token, TokenHash hash, CancellationToken cancellationToken)
    {
        JsonWebToken jwt;
        try
        {
            jwt = new JsonWebToken(token);
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or FormatException)
        {
            return Reject(Malformed, "malformed");
        }

        if (jwt.IsEncrypted)
            return Reject(Malformed, "malformed");
        if (string.Equals(jwt.Alg, "none", StringComparison.OrdinalIgnoreCase) || string.IsNullOrEmpty(jwt.Alg))
            return Reject(IdentityErrors.AlgNone, "alg_none");
        if (!_algorithms.Contains(jwt.Alg))
            return Reject(IdentityErrors.AlgorithmNotAllowed, "algorithm");

        // RFC 7515, section 4.1.11: the extensions crit lists must be understood, and none is (Microsoft.IdentityModel
        // ignores crit). A crit that is empty or not a list is itself invalid.
        if (jwt.TryGetHeaderValue<object>("crit", out _))
            return Reject(IdentityErrors.UnsupportedCritical, "crit");

        // Without the remote keys (an outage before they were ever fetched), the static keys answer alone; a token they
        // do not verify might have been verified by the remote keys, so it is unavailable (503), not invalid (401).
        var (snapshot, remoteMissing) = await GetSnapshotAsync(cancellationToken).ConfigureAwait(false);
        if (snapshot is null)
            return Unavailable();

        // A token naming a kid none of the keys has is checked only against the keys without a kid (PEM keys, the
        // secret, JWKS entries without one), which a token of any kid may have been signed with; with none, it is
        // refused without a signature check. A key with a kid is only ever tried for a token naming it (or none).
        var parameters = snapshot.Parameters;
        var kid = jwt.Kid;
        if (!string.IsNullOrEmpty(kid) && !snapshot.Knows(kid))
        {
            if (_remote is not null && snapshot.Configuration is { } current)
            {
                var refreshed = await _remote.RefreshForUnknownKeyAsync(current, cancellationToken).ConfigureAwait(false);
                if (refreshed is not null)
                    snapshot = SnapshotFor(refreshed);
            }

            if (snapshot.Knows(kid))
                parameters = snapshot.Parameters;
            else if (snapshot.KeylessParameters is { } keyless)
                parameters = keyless;
            else
                return remoteMissing ? Unavailable() : Reject(IdentityErrors.UnknownKey, "unknown_key");
        }

        _metrics.SignatureCheck();
        TokenValidationResult result;
        try
        {
            result = await _handler.ValidateTokenAsync(jwt, parameters).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or FormatException)
        {
            return remoteMissing && CannotTellWithoutRemoteKeys(ex) ? Unavailable() : Reject(Classify(ex));
        }

        if (!result.IsValid)
            return remoteMissing && CannotTellWithoutRemoteKeys(result.Exception) ? Unavailable() : Reject(Classify(result.Exception));

        var identity = result.ClaimsIdentity;
        var subject = Subject(identity);
        if (subject is null)
            return Reject(IdentityErrors.MissingSubject, "subject");
        var plan = identity.FindFirst(_planClaim)?.Value;
        if (string.IsNullOrEmpty(plan))
            plan = _defaultPlan;

        var expires = new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidTo, DateTimeKind.Utc));
        if (_cacheTokens)
            _cache.Add(hash, new CachedIdentity(subject, plan, identity, expires), _time.GetUtcNow());
        _metrics.Outcome("valid");
        return IdentityResult.Valid(subject, plan, identity);
    }

    /// <summary>
    /// The keys in force: the remote and static keys; the static keys alone without a remote source, or while the
    /// remote keys cannot be fetched (then <c>RemoteMissing</c>); <see langword="null"/> when there are no keys at all.
    /// </summary>
    private async ValueTask<(KeySnapshot? Snapshot, bool RemoteMissing)> GetSnapshotAsync(CancellationToken cancellationToken)
    {
        if (_remote is null)
            return (_staticSnapshot, false);
        var configuration = await _remote.GetAsync(cancellationToken).ConfigureAwait(false);
        return configuration is null ? (_staticSnapshot, true) : (SnapshotFor(configuration), false);
    }

    private KeySnapshot SnapshotFor(OpenIdConnectConfiguration configuration)
    {
        var current = Volatile.Read(ref _remoteSnapshot);
        if (current is not null && ReferenceEquals(current.Configuration, configuration))
            return current;
        List<SecurityKey> keys = [.. _staticKeys, .. configuration.SigningKeys.Where(key => !StaticKeys.IsSymmetric(key))];
        var snapshot = NewSnapshot(configuration, keys);
        Volatile.Write(ref _remoteSnapshot, snapshot);
        return snapshot;
    }

    private KeySnapshot NewSnapshot(OpenIdConnectConfiguration? configuration, List<SecurityKey> keys)
    {
        List<SecurityKey> keyless = [.. keys.Where(key => string.IsNullOrEmpty(key.KeyId))];
        return new KeySnapshot(configuration, keys, BuildParameters(keys, configuration), keyless.Count == 0 ? null : BuildParameters(keyless, configuration));
    }

    private TokenValidationParameters BuildParameters(List<SecurityKey> keys, OpenIdConnectConfiguration? configuration)
    {
        List<string> issuers = [.. _issuers];
        if (issuers.Count == 0)
        {
            if (!string.IsNullOrEmpty(configuration?.Issuer))
                issuers.Add(configuration.Issuer);
            if (_authority is not null)
                issuers.Add(_authority);
        }

        return new TokenValidationParameters
        {
            ValidIssuers = issuers,
            ValidateIssuer = true,
            ValidAudiences = _audiences,
            ValidateAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = _clockSkew,
            ValidAlgorithms = [.. _algorithms],
            IssuerSigningKeys = keys,
            TryAllIssuerSigningKeys = true,
            LifetimeValidator = ValidateLifetime,
            AuthenticationType = "Bearer",
            NameClaimType = _subjectClaims[0],
            RoleClaimType = "roles",
        };
    }

    /// <summary>Checks <c>nbf</c> and <c>exp</c> on the injected clock, with the configured skew.</summary>
    private bool ValidateLifetime(DateTime? notBefore, DateTime? expires, SecurityToken token, TokenValidationParameters parameters)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var skew = parameters.ClockSkew;
        if (expires is not { } exp)
            throw new SecurityTokenNoExpirationException("The token has no expiry.");
        if (notBefore is { } nbf && nbf > exp)
            throw new SecurityTokenInvalidLifetimeException("The token's nbf is after its exp.") { NotBefore = nbf, Expires = exp };
        if (notBefore is { } early && early > now + skew)
            throw new SecurityTokenNotYetValidException("The token is not yet valid.") { NotBefore = early };
        if (exp < now - skew)
            throw new SecurityTokenExpiredException("The token has expired.") { Expires = exp };
        return true;
    }

    private string? Subject(ClaimsIdentity identity)
    {
        if (_subjectClaims.Length == 1)
            return Single(identity, _subjectClaims[0]);

        // Length-prefixed, so that ("a|b", "c") and ("a", "b|c") can never give the same subject.
        var builder = new System.Text.StringBuilder();
        foreach (var claim in _subjectClaims)
        {
            var value = Single(identity, claim);
            if (value is null)
                return null;
            builder.Append(value.Length).Append(':').Append(value);
        }

        return builder.ToString();

        static string? Single(ClaimsIdentity identity, string type)
        {
            string? found = null;
            foreach (var claim in identity.FindAll(type))
            {
                if (found is not null)
                    return null;
                found = claim.Value;
            }

            return string.IsNullOrEmpty(found) ? null : found;
        }
    }

    private static (string Description, string Outcome) Classify(Exception? exception) => exception switch
    {
        SecurityTokenExpiredException => (IdentityErrors.Expired, "expired"),
        SecurityTokenNotYetValidException => (IdentityErrors.NotYetValid, "not_yet_valid"),
        SecurityTokenNoExpirationException => (IdentityErrors.NoExpiry, "no_expiry"),
        SecurityTokenInvalidIssuerException => (IdentityErrors.WrongIssuer, "issuer"),
        SecurityTokenInvalidAudienceException => (IdentityErrors.WrongAudience, "audience"),
        // No key verified: the one the kid names, the keys without a kid for an unknown kid, or every key without a kid.
        SecurityTokenInvalidSignatureException => (IdentityErrors.BadSignature, "signature"),
        SecurityTokenInvalidAlgorithmException => (IdentityErrors.AlgorithmNotAllowed, "algorithm"),
        SecurityTokenMalformedException or ArgumentException or FormatException => (IdentityErrors.Malformed, "malformed"),
        _ => (IdentityErrors.Invalid, "invalid"),
    };

    /// <summary>
    /// Whether a validation that ran without the remote keys failed on what they (or the discovery document) could have
    /// changed: no static key verified the signature, or the issuer is not the authority while the valid issuer is to be
    /// discovered.
    /// </summary>
    private bool CannotTellWithoutRemoteKeys(Exception? exception) =>
        exception is SecurityTokenInvalidSignatureException or SecurityTokenInvalidAlgorithmException
        || (exception is SecurityTokenInvalidIssuerException && _issuers.Length == 0);

    /// <summary>The answer while the keys that could verify a token cannot be fetched: 503, retry when the next fetch is due.</summary>
    private IdentityResult Unavailable() =>
        Reject(IdentityResult.Unavailable(IdentityErrors.KeysUnavailable, _remote?.RetryAfter ?? TimeSpan.FromSeconds(1)), "keys_unavailable");

    private IdentityResult Reject((string Description, string Outcome) reason) => Reject(reason.Description, reason.Outcome);

    private IdentityResult Reject(string description, string outcome) =>
        Reject(IdentityResult.Invalid(IdentityErrors.InvalidToken, description), outcome);

    private IdentityResult Reject(IdentityResult result, string outcome)
    {
        _metrics.Outcome(outcome);

        // Within a log budget of the engine's size (this resolver's own), so that a flood of bad tokens cannot flood the log.
        if (_logger.IsEnabled(LogLevel.Debug) && _logBudget.TryTake(out var suppressed))
            LogRejected(_logger, outcome, suppressed);
        return result;
    }

    [LoggerMessage(EventId = 4100, Level = LogLevel.Debug, Message = "Bearer token rejected: {Reason} ({Suppressed} earlier rejections not logged).")]
    private static partial void LogRejected(ILogger logger, string reason, long suppressed);

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

    /// <summary>The keys in force and the validation parameters built from them.</summary>
    private sealed class KeySnapshot
    {
        private readonly HashSet<string> _keyIds = new(StringComparer.Ordinal);

        public KeySnapshot(OpenIdConnectConfiguration? configuration, List<SecurityKey> keys, TokenValidationParameters parameters, TokenValidationParameters? keylessParameters)
        {
            Configuration = configuration;
            Parameters = parameters;
            KeylessParameters = keylessParameters;
            foreach (var key in keys)
            {
                if (!string.IsNullOrEmpty(key.KeyId))
                    _keyIds.Add(key.KeyId);
            }
        }

        public OpenIdConnectConfiguration? Configuration { get; }

        /// <summary>All the keys: the key a token's kid names, or every key for a token without a kid.</summary>
        public TokenValidationParameters Parameters { get; }

        /// <summary>The keys without a kid, for a token whose kid names none of the keys; <see langword="null"/> when there are none.</summary>
        public TokenValidationParameters? KeylessParameters { get; }

        public bool Knows(string kid) => _keyIds.Contains(kid);
    }
}
