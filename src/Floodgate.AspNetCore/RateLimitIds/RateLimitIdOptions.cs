using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.RateLimitIds;

/// <summary>What a request whose rate-limit id is wrong gets.</summary>
public enum InvalidRateLimitIdAction
{
    /// <summary>It goes on as a request without an id (the header is removed, so no rule keys on it), and is counted.</summary>
    Ignore,

    /// <summary>401, with a problem details body.</summary>
    Unauthorized,

    /// <summary>429, with a problem details body.</summary>
    TooManyRequests,
}

/// <summary>A secret the rate-limit id is made with, and its key id.</summary>
/// <param name="KeyId">Carried in each id so that a verifier picks the key: 1 to 32 of <c>A-Z a-z 0-9 _ -</c>.</param>
/// <param name="Secret">The secret: at least <see cref="RateLimitIdOptions.MinSecretBytes"/> bytes.</param>
public sealed record RateLimitIdKey(string KeyId, byte[] Secret);

/// <summary>
/// The verifiable rate-limit id (<see cref="RateLimitId"/>): issued to an authenticated caller, verified on every request
/// before the edge tier, bound to the subject once the token is validated (docs/edge.md).
/// </summary>
public sealed class RateLimitIdOptions
{
    /// <summary>The fewest bytes a secret may have.</summary>
    public const int MinSecretBytes = 32;

    /// <summary>The header the id travels in. Default <c>x-ratelimit-user-id</c>.</summary>
    public string HeaderName { get; set; } = RateLimitId.DefaultHeader;

    /// <summary>The keys: the first issues ids, every one verifies them (the previous one while ids made with it are still held).</summary>
    public IList<RateLimitIdKey> Keys { get; } = [];

    /// <summary>Claims the id is derived from besides the subject (such as an account), in order.</summary>
    public IList<string> Claims { get; } = [];

    /// <summary>Endpoint classes whose per-endpoint ids the issue endpoint returns too (<see cref="RateLimitId.ForEndpoint"/>).</summary>
    public IList<string> EndpointClasses { get; } = [];

    /// <summary>The path that issues the id to a request with a valid token; none (off) by default.</summary>
    public PathString? IssuePath { get; set; }

    /// <summary>The cookie the issue endpoint sets too (<c>Secure; HttpOnly; SameSite=Strict</c>), and read when the header is absent; none by default.</summary>
    public string? CookieName { get; set; }

    /// <summary>What a request whose id is forged, malformed, of an unknown key, or another user's gets. Default <see cref="InvalidRateLimitIdAction.Ignore"/>.</summary>
    public InvalidRateLimitIdAction OnInvalid { get; set; } = InvalidRateLimitIdAction.Ignore;

    /// <summary>Throws when an option is invalid, with a message naming it.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        if (Keys.Count == 0)
        {
            throw new ArgumentException("FloodgateOptions.RateLimitId.Keys: at least one key is needed to issue and verify ids.", nameof(Keys));
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in Keys)
        {
            ArgumentNullException.ThrowIfNull(key);
            if (!RateLimitId.IsValidKeyId(key.KeyId))
            {
                throw new ArgumentException($"FloodgateOptions.RateLimitId.Keys: '{key.KeyId}' is not a key id: 1 to {RateLimitId.MaxKeyIdLength} of A-Z a-z 0-9 _ -.", nameof(Keys));
            }

            if (!ids.Add(key.KeyId))
            {
                throw new ArgumentException($"FloodgateOptions.RateLimitId.Keys: '{key.KeyId}' names two keys.", nameof(Keys));
            }

            if (key.Secret is null || key.Secret.Length < MinSecretBytes)
            {
                throw new ArgumentException($"FloodgateOptions.RateLimitId.Keys: the secret of '{key.KeyId}' must be at least {MinSecretBytes} bytes.", nameof(Keys));
            }
        }

        if (string.IsNullOrWhiteSpace(HeaderName))
        {
            throw new ArgumentException("FloodgateOptions.RateLimitId.HeaderName must name a header.", nameof(HeaderName));
        }

        if (!Enum.IsDefined(OnInvalid))
        {
            throw new ArgumentException($"FloodgateOptions.RateLimitId.OnInvalid has the unknown value {OnInvalid}.", nameof(OnInvalid));
        }

        if (IssuePath is { } path && (!path.HasValue || path.Value == "/"))
        {
            throw new ArgumentException("FloodgateOptions.RateLimitId.IssuePath must be a path such as /.well-known/ratelimit-id.", nameof(IssuePath));
        }

        if (CookieName is not null && (CookieName.Length == 0 || CookieName.Any(c => c <= ' ' || c >= 0x7F || "()<>@,;:\\\"/[]?={}".Contains(c, StringComparison.Ordinal))))
        {
            throw new ArgumentException($"FloodgateOptions.RateLimitId.CookieName: '{CookieName}' is not a cookie name.", nameof(CookieName));
        }
    }
}
