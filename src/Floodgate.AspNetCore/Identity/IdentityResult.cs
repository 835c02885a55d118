using System.Security.Claims;

namespace Floodgate.AspNetCore.Identity;

/// <summary>How an identity resolution ended.</summary>
public enum IdentityStatus
{
    /// <summary>The request carries no credentials.</summary>
    Anonymous,

    /// <summary>The credentials were validated.</summary>
    Valid,

    /// <summary>The credentials are present but invalid: the request is answered 401.</summary>
    Invalid,

    /// <summary>
    /// The credentials cannot be checked now, because the keys that could verify them are unavailable (an identity
    /// provider outage): the request is answered 503 with <c>Retry-After</c>, never 401, so that the client keeps a
    /// token that may well be good.
    /// </summary>
    Unavailable,
}

/// <summary>Who is calling, as an <see cref="IIdentityResolver"/> resolved it.</summary>
public readonly struct IdentityResult
{
    private IdentityResult(IdentityStatus status, string? subject, string? plan, ClaimsIdentity? claims, string? error, string? errorDescription, TimeSpan retryAfter = default)
    {
        Status = status;
        Subject = subject;
        Plan = plan;
        Claims = claims;
        Error = error;
        ErrorDescription = errorDescription;
        RetryAfter = retryAfter;
    }

    /// <summary>No credentials.</summary>
    public static IdentityResult Anonymous => default;

    /// <summary>How the resolution ended.</summary>
    public IdentityStatus Status { get; }

    /// <summary>The stable subject the user tier keys on; set when <see cref="IdentityStatus.Valid"/>.</summary>
    public string? Subject { get; }

    /// <summary>The plan, or <see langword="null"/> for the default plan.</summary>
    public string? Plan { get; }

    /// <summary>The validated claims; set when <see cref="IdentityStatus.Valid"/>.</summary>
    public ClaimsIdentity? Claims { get; }

    /// <summary>For <see cref="IdentityStatus.Invalid"/>, the RFC 6750 error code, such as <c>invalid_token</c>.</summary>
    public string? Error { get; }

    /// <summary>
    /// For <see cref="IdentityStatus.Invalid"/> and <see cref="IdentityStatus.Unavailable"/>, a short description safe
    /// to send to the client.
    /// </summary>
    public string? ErrorDescription { get; }

    /// <summary>For <see cref="IdentityStatus.Unavailable"/>, when the credentials may be checked again; zero otherwise.</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>A validated identity.</summary>
    public static IdentityResult Valid(string subject, string? plan, ClaimsIdentity claims)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        ArgumentNullException.ThrowIfNull(claims);
        return new(IdentityStatus.Valid, subject, plan, claims, null, null);
    }

    /// <summary>Invalid credentials, answered 401 with <c>WWW-Authenticate: Bearer error="…", error_description="…"</c>.</summary>
    public static IdentityResult Invalid(string error, string description) =>
        new(IdentityStatus.Invalid, null, null, null, error, description);

    /// <summary>
    /// Credentials that cannot be checked now, answered 503 with <c>Retry-After</c> (<paramref name="retryAfter"/> in
    /// whole seconds, at least 1) and a problem details body with <paramref name="description"/>.
    /// </summary>
    public static IdentityResult Unavailable(string description, TimeSpan retryAfter)
    {
        ArgumentException.ThrowIfNullOrEmpty(description);
        ArgumentOutOfRangeException.ThrowIfLessThan(retryAfter, TimeSpan.Zero);
        return new(IdentityStatus.Unavailable, null, null, null, null, description, retryAfter);
    }
}
