using Microsoft.AspNetCore.Http;

namespace Floodgate.AspNetCore.Identity;

/// <summary>
/// One identity model for JWTs and API keys: each request goes to the resolver of the credential it presents, among
/// those its endpoint accepts (<see cref="AcceptCredentialsMetadata"/>, else <see cref="ApiKeyIdentityResolver.Accept"/>),
/// and both name the subject and plan the same way, so a key and a token for one subject share its budgets.
/// </summary>
/// <remarks>
/// A request that presents a key (in the key header, or a Bearer token with the key prefix) goes to the key resolver
/// where keys are accepted; any other goes to the JWT resolver where JWTs are accepted. Where only keys are accepted, a
/// JWT is refused as a malformed key (401); where only JWTs are, a key is validated as a JWT, and refused as one.
/// </remarks>
/// <param name="tokens">The JWT resolver; <see langword="null"/> when only keys are in use.</param>
/// <param name="keys">The API key resolver.</param>
public sealed class CredentialIdentityResolver(IIdentityResolver? tokens, ApiKeyIdentityResolver keys) : IIdentityResolver, IDisposable
{
    private readonly ApiKeyIdentityResolver _keys = keys ?? throw new ArgumentNullException(nameof(keys));

    /// <summary>The JWT resolver, if any.</summary>
    public IIdentityResolver? Tokens => tokens;

    /// <summary>The API key resolver.</summary>
    public ApiKeyIdentityResolver Keys => _keys;

    /// <inheritdoc/>
    public ValueTask<IdentityResult> ResolveAsync(HttpContext context, CancellationToken cancellationToken) =>
        For(context) is { } resolver ? resolver.ResolveAsync(context, cancellationToken) : new(IdentityResult.Anonymous);

    /// <inheritdoc/>
    public bool TryResolveCached(HttpContext context, out IdentityResult identity)
    {
        if (For(context) is { } resolver)
        {
            return resolver.TryResolveCached(context, out identity);
        }

        identity = IdentityResult.Anonymous;
        return true;
    }

    /// <summary>Disposes the JWT resolver (its remote key source), if it is disposable.</summary>
    public void Dispose() => (tokens as IDisposable)?.Dispose();

    /// <summary>The resolver of the credential <paramref name="context"/> presents; <see langword="null"/> when none applies (anonymous).</summary>
    private IIdentityResolver? For(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var accepted = context.GetEndpoint()?.Metadata.GetMetadata<AcceptCredentialsMetadata>()?.Kinds ?? _keys.Accept;
        if ((accepted & CredentialKinds.ApiKey) != 0 && (accepted == CredentialKinds.ApiKey || tokens is null || _keys.Presents(context)))
        {
            return _keys;
        }

        return (accepted & CredentialKinds.Jwt) != 0 ? tokens : null;
    }
}
