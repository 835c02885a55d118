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
    /// <returns>The identity: valid, anonymous (no credentials), invalid with the reason, or unavailable (cannot be checked now).</returns>
    ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken);

    /// <summary>
    /// Resolves the identity of <paramref name="context"/>'s request only if that costs no signature check and no I/O:
    /// the request carries no credentials, or credentials already validated and still cached.
    /// </summary>
    /// <remarks>
    /// <para>
    /// The middleware calls it before the edge tier. When it answers, the middleware decides the edge tier and the
    /// later ones together (one round trip on a remote store) and does not call <see cref="ResolveAsync"/> for the
    /// request, so an implementation does here the bookkeeping (metrics) of a resolution. When it does not answer,
    /// the middleware evaluates the edge tier first and then calls <see cref="ResolveAsync"/>, so that a flood of
    /// unknown or forged credentials is shed by the edge before any of them is checked.
    /// </para>
    /// <para>
    /// It must return <see langword="false"/> whenever answering would take a signature check or I/O, and should
    /// return <see langword="false"/> for defective credentials, which <see cref="ResolveAsync"/> answers after the
    /// edge. The default implementation always returns <see langword="false"/>.
    /// </para>
    /// </remarks>
    /// <param name="context">The request.</param>
    /// <param name="identity">
    /// When the method returns <see langword="true"/>, the identity, as <see cref="ResolveAsync"/> would resolve it:
    /// <see cref="IdentityStatus.Valid"/> or <see cref="IdentityStatus.Anonymous"/>. Otherwise the default value.
    /// </param>
    /// <returns>
    /// <see langword="true"/> when <paramref name="identity"/> is the request's identity; <see langword="false"/>
    /// when only <see cref="ResolveAsync"/> can tell, which must then be called.
    /// </returns>
    bool TryResolveCached(HttpContext context, out IdentityResult identity)
    {
        identity = default;
        return false;
    }
}
