namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Where the signing keys a <see cref="JwtIdentityResolver"/> fetches from its identity provider stand: when they were last
/// fetched, and whether the last attempt failed, why, and when the next one is.
/// </summary>
/// <param name="Address">The discovery document or JWKS URL the keys are fetched from.</param>
/// <param name="FetchedAt">When the keys in force were fetched; <see langword="null"/> while none ever was.</param>
/// <param name="FailedAt">When the last attempt failed; <see langword="null"/> when it succeeded (or none was made yet).</param>
/// <param name="Error">Why the last attempt failed, in one line; <see langword="null"/> when it did not.</param>
/// <param name="NextAttempt">When the keys are fetched again after that failure; <see langword="null"/> without one.</param>
public sealed record SigningKeyStatus(string Address, DateTimeOffset? FetchedAt, DateTimeOffset? FailedAt, string? Error, DateTimeOffset? NextAttempt)
{
    /// <summary>
    /// Whether the identity provider's keys are in force: fetched at least once (a later failed refresh keeps them).
    /// Without them, a token only they could verify is answered <see cref="IdentityStatus.Unavailable"/>.
    /// </summary>
    public bool HasKeys => FetchedAt is not null;
}
