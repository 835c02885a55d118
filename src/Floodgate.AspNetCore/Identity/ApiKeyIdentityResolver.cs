using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using Floodgate.ApiKeys;
using Floodgate.Logging;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Resolves identity from an API key (<see cref="ApiKeySecret"/>), presented as a Bearer token that begins with the
/// key prefix or in the configured header: the key's record names the subject and the plan, which every tier uses
/// exactly as a token's.
/// </summary>
/// <remarks>
/// <para>
/// Verification is one SHA-256 hash and a local lookup (<see cref="IApiKeyStore.TryFind"/>), so
/// <see cref="TryResolveCached"/> answers a known key without any wait and the middleware decides every tier of the
/// request at once. A key not held locally (unknown, or created on another replica a moment ago) is answered by
/// <see cref="ResolveAsync"/>, after the edge tier: a flood of random keys is shed by the edge, and a remote store's
/// lookups are bounded by its negative cache. Unknown, revoked and expired keys resolve to
/// <see cref="IdentityResult.Invalid"/> (401). Each valid use is noted on the key's entry, to the second, for its
/// last-used time: no write per request.
/// </para>
/// <para>
/// The identity's claims: <c>sub</c> (the subject), <c>plan</c> when the key names one, <c>account</c> when it names
/// one, and <c>key_id</c>, so that rules keyed on a claim read them as they read a token's. Thread-safe.
/// </para>
/// </remarks>
public sealed partial class ApiKeyIdentityResolver : IIdentityResolver
{
    /// <summary>The authentication type of the identities keys resolve to.</summary>
    public const string AuthenticationType = "ApiKey";

    private static readonly IdentityResult Malformed = IdentityResult.Invalid(IdentityErrors.InvalidToken, IdentityErrors.MalformedApiKey);
    private static readonly IdentityResult Unknown = IdentityResult.Invalid(IdentityErrors.InvalidToken, IdentityErrors.UnknownApiKey);
    private static readonly IdentityResult Expired = IdentityResult.Invalid(IdentityErrors.InvalidToken, IdentityErrors.ApiKeyExpired);

    private readonly string _prefix;
    private readonly string? _header;
    private readonly string? _defaultPlan;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IdentityMetrics _metrics;
    private readonly LogBudget _logBudget;

    // One claims identity per record, built at its first use: a request allocates none.
    private readonly ConditionalWeakTable<ApiKeyRecord, ClaimsIdentity> _claims = [];

    /// <summary>Creates a resolver over <paramref name="store"/>.</summary>
    /// <param name="store">Where the keys are.</param>
    /// <param name="options">The options; validated here, and copied.</param>
    /// <param name="timeProvider">The clock for expiries and the grace period of rotated keys; the system clock by default.</param>
    /// <param name="logger">Where refused keys are logged (at Debug, within a budget).</param>
    /// <param name="meterFactory">Creates the <c>Floodgate</c> meter; a shared static meter by default.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message names each bad field.</exception>
    public ApiKeyIdentityResolver(IApiKeyStore store, ApiKeyIdentityOptions options, TimeProvider? timeProvider = null, ILogger<ApiKeyIdentityResolver>? logger = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Validate() is { Count: > 0 } problems)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(options));
        }

        Store = store;
        Accept = options.Accept;
        _prefix = options.Prefix;
        _header = options.Header;
        _defaultPlan = options.DefaultPlan;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _metrics = new IdentityMetrics(meterFactory);
        _logBudget = new LogBudget(_time);
    }

    /// <summary>Where the keys are.</summary>
    public IApiKeyStore Store { get; }

    /// <summary>What a route accepts unless its endpoint says otherwise.</summary>
    public CredentialKinds Accept { get; }

    /// <summary>Whether the request presents an API key: in the configured header, or as a Bearer token with the key prefix.</summary>
    public bool Presents(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Read(context, out _) is not Credential.None and not Credential.Other;
    }

    /// <inheritdoc/>
    public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken)
    {
        // A key held locally and valid is answered without allocating; the rest (a miss, a refusal) below.
        if (TryResolveCached(context, out var identity))
        {
            return new(identity);
        }

        return Read(context, out var key) switch
        {
            Credential.None => new(Anonymous()),
            Credential.Key => ResolveKeyAsync(key.ToString(), cancellationToken),
            _ => new(Reject(Malformed, "malformed")),
        };
    }

    /// <summary>
    /// Resolves without any wait: anonymous without credentials, and a key held locally that is valid now. Anything
    /// else (a key not held here, a wrong or expired one, another credential) returns <see langword="false"/>, for
    /// <see cref="ResolveAsync"/> to answer after the edge tier.
    /// </summary>
    /// <inheritdoc/>
    public bool TryResolveCached(HttpContext context, out IdentityResult identity)
    {
        ArgumentNullException.ThrowIfNull(context);
        identity = default;
        switch (Read(context, out var key))
        {
            case Credential.None:
                identity = Anonymous();
                return true;
            case Credential.Key when ApiKeySecret.TryReadId(key, _prefix, out var id) && Store.TryFind(id, out var entry):
                Span<byte> hash = stackalloc byte[ApiKeySecret.HashLength];
                ApiKeySecret.Hash(key, hash);
                var now = _time.GetUtcNow();
                if (entry.Record.Check(hash, now) != ApiKeyCheck.Valid)
                {
                    return false;
                }

                identity = Admit(entry, now);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Resolves the identity of a key, for front doors without an <see cref="HttpContext"/>.</summary>
    /// <param name="key">The key as presented; <see langword="null"/> or blank when none.</param>
    /// <param name="cancellationToken">Cancels a lookup in a remote store.</param>
    /// <returns>The identity: valid, anonymous (no key), or invalid with the reason.</returns>
    public ValueTask<IdentityResult> ResolveKeyAsync(string? key, CancellationToken cancellationToken)
    {
        var text = key.AsSpan().Trim();
        if (text.IsEmpty)
        {
            return new(Anonymous());
        }

        if (!ApiKeySecret.TryReadId(text, _prefix, out var id))
        {
            return new(Reject(Malformed, "malformed"));
        }

        var hash = new byte[ApiKeySecret.HashLength];
        ApiKeySecret.Hash(text, hash);
        return Store.TryFind(id, out var entry) ? new(Verify(entry, hash)) : FindAsync(id.ToString(), hash, cancellationToken);
    }

    private async ValueTask<IdentityResult> FindAsync(string id, byte[] hash, CancellationToken cancellationToken) =>
        await Store.FindAsync(id, cancellationToken).ConfigureAwait(false) is { } entry ? Verify(entry, hash) : Reject(Unknown, "unknown_key");

    private IdentityResult Verify(ApiKeyEntry entry, ReadOnlySpan<byte> hash)
    {
        var now = _time.GetUtcNow();
        return entry.Record.Check(hash, now) switch
        {
            ApiKeyCheck.Valid => Admit(entry, now),
            ApiKeyCheck.Expired => Reject(Expired, "expired_key"),

            // A wrong secret for a real id is answered as an unknown key: the answer tells nothing of which ids exist.
            _ => Reject(Unknown, "unknown_key"),
        };
    }

    private IdentityResult Admit(ApiKeyEntry entry, DateTimeOffset now)
    {
        entry.Touch(now);
        _metrics.Outcome("valid");
        var record = entry.Record;
        return IdentityResult.Valid(record.Subject, record.Plan ?? _defaultPlan, _claims.GetValue(record, Claims));
    }

    private static ClaimsIdentity Claims(ApiKeyRecord record)
    {
        var identity = new ClaimsIdentity(AuthenticationType, "sub", "role");
        identity.AddClaim(new Claim("sub", record.Subject));
        identity.AddClaim(new Claim("key_id", record.Id));
        if (record.Plan is not null)
        {
            identity.AddClaim(new Claim("plan", record.Plan));
        }

        if (record.Account is not null)
        {
            identity.AddClaim(new Claim("account", record.Account));
        }

        return identity;
    }

    private IdentityResult Anonymous()
    {
        _metrics.Outcome("anonymous");
        return IdentityResult.Anonymous;
    }

    /// <summary>The credential the request presents: a key (in the header, or a Bearer token with the prefix), something else, or nothing.</summary>
    private Credential Read(HttpContext context, out ReadOnlySpan<char> key)
    {
        key = default;
        var headers = context.Request.Headers;
        if (_header is not null && headers.TryGetValue(_header, out var values) && values.Count > 0)
        {
            if (values.Count > 1)
            {
                return Credential.Malformed;
            }

            key = (values[0] ?? string.Empty).AsSpan().Trim();
            return key.IsEmpty ? Credential.Malformed : Credential.Key;
        }

        var authorization = headers.Authorization;
        if (authorization.Count == 0)
        {
            return Credential.None;
        }

        var header = authorization.Count == 1 ? (authorization[0] ?? string.Empty).AsSpan().Trim() : default;
        if (header.IsEmpty)
        {
            return authorization.Count == 1 ? Credential.None : Credential.Other;
        }

        var space = header.IndexOfAny(' ', '\t');
        if (space < 0 || !header[..space].Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            return Credential.Other;
        }

        key = header[(space + 1)..].Trim();
        return key.StartsWith(_prefix, StringComparison.Ordinal) ? Credential.Key : Credential.Other;
    }

    private IdentityResult Reject(IdentityResult result, string outcome)
    {
        _metrics.Outcome(outcome);

        // Within a budget, so that a flood of bad keys cannot flood the log.
        if (_logger.IsEnabled(LogLevel.Debug) && _logBudget.TryTake(out var suppressed))
        {
            LogRejected(_logger, outcome, suppressed);
        }

        return result;
    }

    [LoggerMessage(EventId = 4110, Level = LogLevel.Debug, Message = "API key refused: {Reason} ({Suppressed} earlier refusals not logged).")]
    private static partial void LogRejected(ILogger logger, string reason, long suppressed);

    /// <summary>What a request presents.</summary>
    private enum Credential
    {
        /// <summary>No credentials.</summary>
        None,

        /// <summary>A key.</summary>
        Key,

        /// <summary>Several values of the key header, or an empty one.</summary>
        Malformed,

        /// <summary>Credentials that are not a key (a JWT, another scheme).</summary>
        Other,
    }
}
