using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Floodgate.AspNetCore.Identity;

// Validation of a token not in the cache: the checks that need no key, the keys to try, the signature and claims, and
// what a failure means.
public sealed partial class JwtIdentityResolver
{
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
        var plan = Plan(identity);

        var expires = new DateTimeOffset(DateTime.SpecifyKind(jwt.ValidTo, DateTimeKind.Utc));
        if (_cacheTokens)
            _cache.Add(hash, new CachedIdentity(subject, plan, identity, expires), _time.GetUtcNow());
        _metrics.Outcome("valid");
        return IdentityResult.Valid(subject, plan, identity);
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
}
