namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// The RFC 6750 error code and the short, client-safe descriptions <see cref="JwtIdentityResolver"/> answers with.
/// They name the defect, never the token, the key material or the expected values.
/// </summary>
public static class IdentityErrors
{
    /// <summary>The RFC 6750 error code of every invalid credential.</summary>
    public const string InvalidToken = "invalid_token";

    /// <summary>The Authorization header uses another scheme than Bearer.</summary>
    public const string WrongScheme = "expected a Bearer token";

    /// <summary>The token is not a well-formed signed JWT (or several Authorization headers were sent).</summary>
    public const string Malformed = "malformed token";

    /// <summary>The token is unsigned: its header says <c>alg: none</c>.</summary>
    public const string AlgNone = "alg: none is not accepted";

    /// <summary>The token's algorithm is not in the allow-list.</summary>
    public const string AlgorithmNotAllowed = "algorithm not allowed";

    /// <summary>
    /// The token's header has <c>crit</c>: it names extensions the recipient must understand (RFC 7515, section 4.1.11),
    /// and none is understood.
    /// </summary>
    public const string UnsupportedCritical = "unsupported critical header parameter";

    /// <summary>The token has expired.</summary>
    public const string Expired = "token expired";

    /// <summary>The token's <c>nbf</c> is in the future.</summary>
    public const string NotYetValid = "token not yet valid";

    /// <summary>The token has no <c>exp</c> claim.</summary>
    public const string NoExpiry = "token has no expiry";

    /// <summary>The token's <c>iss</c> is not a valid issuer.</summary>
    public const string WrongIssuer = "wrong issuer";

    /// <summary>The token's <c>aud</c> names no valid audience.</summary>
    public const string WrongAudience = "wrong audience";

    /// <summary>The signature does not verify.</summary>
    public const string BadSignature = "bad signature";

    /// <summary>The token's <c>kid</c> names no known signing key, even after a refresh.</summary>
    public const string UnknownKey = "unknown signing key";

    /// <summary>A subject claim is missing, empty or repeated.</summary>
    public const string MissingSubject = "missing subject claim";

    /// <summary>
    /// The signing keys could not be fetched from the identity provider, and no static key verifies the token: the
    /// result is <see cref="IdentityStatus.Unavailable"/> (503), not invalid.
    /// </summary>
    public const string KeysUnavailable = "signing keys unavailable";

    /// <summary>Any other defect.</summary>
    public const string Invalid = "invalid token";

    /// <summary>The API key is well formed, but no key of that id and secret is stored (never created, or revoked).</summary>
    public const string UnknownApiKey = "unknown API key";

    /// <summary>The API key has expired.</summary>
    public const string ApiKeyExpired = "API key expired";

    /// <summary>The credential is not of the API key form.</summary>
    public const string MalformedApiKey = "malformed API key";
}
