using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// Resolves who is calling: validates the request's credentials and names the stable subject and plan the user tier
/// keys on. It never keys on the raw credential, which rotates on every refresh.
/// </summary>
public interface IIdentityResolver
{
    /// <summary>Resolves the identity of <paramref name="context"/>'s request.</summary>
    /// <param name="context">The request.</param>
    /// <param name="cancellationToken">Cancels fetching keys.</param>
    /// <returns>The identity: valid, anonymous (no credentials), or invalid with the reason.</returns>
    ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken);
}
