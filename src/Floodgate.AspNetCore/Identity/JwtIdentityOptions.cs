using System.Collections.ObjectModel;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Options of <see cref="JwtIdentityResolver"/>: where signing keys come from, what a valid token must carry, and how
/// the stable subject and the plan are read from its claims.
/// </summary>
/// <remarks>
/// <para>
/// Keys come from exactly one remote source, <see cref="Authority"/> (OpenID Connect discovery) or
/// <see cref="JwksUri"/>, and/or from static keys: <see cref="JsonWebKeySet"/>, <see cref="PublicKeysPem"/> and, for
/// HMAC algorithms only, <see cref="SymmetricSecret"/>. At least one source is required.
/// </para>
/// <para>
/// Collections that are left empty take their documented defaults, so that configuration binding, which appends to
/// existing collections, never mixes defaults with configured values.
/// </para>
/// <para>Check the options with <see cref="Validate"/>; <see cref="JwtIdentityResolver"/> refuses invalid options.</para>
/// </remarks>
public sealed class JwtIdentityOptions
{
    /// <summary>The algorithms allowed when <see cref="Algorithms"/> is empty: RS*, PS* and ES* at 256, 384 and 512 bits.</summary>
    public static IReadOnlyList<string> DefaultAlgorithms { get; } = new ReadOnlyCollection<string>(
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]);

    /// <summary>The algorithms that may be allowed at all: the defaults and, with a <see cref="SymmetricSecret"/>, HS256/384/512.</summary>
    public static IReadOnlyList<string> SupportedAlgorithms { get; } = new ReadOnlyCollection<string>(
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"]);

    /// <summary>The subject claim used when <see cref="SubjectClaims"/> is empty.</summary>
    public const string DefaultSubjectClaim = "sub";

    /// <summary>
    /// The OpenID Connect issuer URL, such as <c>https://idp.example.com/realms/api</c>. Signing keys and the issuer
    /// are discovered from <c>{Authority}/.well-known/openid-configuration</c>, cached and refreshed.
    /// </summary>
    public string? Authority { get; set; }

    /// <summary>An explicit JWKS URL, for issuers without discovery. Exclusive with <see cref="Authority"/>.</summary>
    public string? JwksUri { get; set; }

    /// <summary>A static JSON Web Key Set document (<c>{"keys":[…]}</c>) with public keys.</summary>
    public string? JsonWebKeySet { get; set; }

    /// <summary>
    /// Static public keys in PEM (<c>PUBLIC KEY</c>, <c>RSA PUBLIC KEY</c>, or a certificate). Each text may hold several
    /// blocks, such as a certificate bundle: every block gives a key. They carry no key id (a certificate's thumbprint is
    /// not one), so they are tried for every token.
    /// </summary>
    public Collection<string> PublicKeysPem { get; } = [];

    /// <summary>
    /// The shared secret for HS256/384/512 tokens, as text (its UTF-8 bytes are the key; at least 32 bytes). HMAC
    /// algorithms are accepted only when this is set and they are listed in <see cref="Algorithms"/>.
    /// </summary>
    public string? SymmetricSecret { get; set; }

    /// <summary>
    /// The valid issuers (<c>iss</c>). Required unless <see cref="Authority"/> is set, in which case the discovered issuer
    /// is used when this is empty.
    /// </summary>
    public Collection<string> Issuers { get; } = [];

    /// <summary>The valid audiences (<c>aud</c>); a token must name at least one of them. Required.</summary>
    public Collection<string> Audiences { get; } = [];

    /// <summary>The allowed signing algorithms; empty means <see cref="DefaultAlgorithms"/>. <c>none</c> is never allowed.</summary>
    public Collection<string> Algorithms { get; } = [];

    /// <summary>The tolerance when checking <c>exp</c> and <c>nbf</c>; 30 seconds by default, at most 5 minutes.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The claims that make up the stable subject; empty means <c>[sub]</c>. With several claims, such as
    /// <c>[sub, account_id]</c>, each value is length-prefixed (<c>5:alice4:acme</c>) so that no two different claim
    /// tuples give the same subject. Every claim must be present exactly once.
    /// </summary>
    public Collection<string> SubjectClaims { get; } = [];

    /// <summary>The claim that names the plan; <c>plan</c> by default.</summary>
    public string PlanClaim { get; set; } = "plan";

    /// <summary>The plan when the token has no plan claim; <see langword="null"/> leaves the policy's default plan.</summary>
    public string? DefaultPlan { get; set; }

    /// <summary>
    /// Whether metadata (discovery and JWKS) must be fetched over HTTPS; <see langword="true"/> by default. Turn off only
    /// for a local identity provider on loopback, such as in tests.
    /// </summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    /// <summary>
    /// The minimum time between two key refreshes caused by a token whose <c>kid</c> is not among the cached keys;
    /// 30 seconds by default, at least 2 seconds. This bounds the JWKS fetches that forged <c>kid</c>s can cause.
    /// </summary>
    public TimeSpan KeyRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often keys are refreshed regardless; 12 hours by default, at least 5 minutes.</summary>
    public TimeSpan KeyAutomaticRefreshInterval { get; set; } = TimeSpan.FromHours(12);

    /// <summary>The timeout of one metadata request; 10 seconds by default.</summary>
    public TimeSpan BackchannelTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The HTTP client used for metadata; when <see langword="null"/>, the resolver creates and owns one with
    /// <see cref="BackchannelTimeout"/>.
    /// </summary>
    public HttpClient? Backchannel { get; set; }

    /// <summary>
    /// How many validated tokens are cached (keyed by a SHA-256 hash of the token, until its expiry), so that a repeated
    /// token costs no signature check; 10,000 by default, 0 disables the cache.
    /// </summary>
    public int TokenCacheSize { get; set; } = 10_000;

    /// <summary>The allowed algorithms in force: <see cref="Algorithms"/>, or <see cref="DefaultAlgorithms"/> when empty.</summary>
    public IReadOnlyList<string> EffectiveAlgorithms => Algorithms.Count > 0 ? Algorithms : DefaultAlgorithms;

    /// <summary>The subject claims in force: <see cref="SubjectClaims"/>, or <c>[sub]</c> when empty.</summary>
    public IReadOnlyList<string> EffectiveSubjectClaims => SubjectClaims.Count > 0 ? SubjectClaims : [DefaultSubjectClaim];

    /// <summary>Checks the options.</summary>
    /// <returns>One message per problem, each naming the field; empty when the options are valid.</returns>
    public IReadOnlyList<string> Validate() => JwtIdentityOptionsValidator.Check(this);
}
