namespace Floodgate.AspNetCore.Identity;

/// <summary>The kinds of credentials a route accepts.</summary>
[Flags]
public enum CredentialKinds
{
    /// <summary>Bearer JWTs, validated by the JWT resolver.</summary>
    Jwt = 1,

    /// <summary>API keys, as a Bearer token or in the configured header.</summary>
    ApiKey = 2,

    /// <summary>Either: an API key when the request presents one, else a JWT.</summary>
    Both = Jwt | ApiKey,
}

/// <summary>
/// Endpoint metadata: the credentials an endpoint accepts, in place of <see cref="ApiKeyIdentityOptions.Accept"/>. Added by
/// <c>.AcceptCredentials(...)</c> on an endpoint, or by the gateway from a route's <c>credentials</c> field.
/// </summary>
/// <param name="kinds">The credentials the endpoint accepts.</param>
public sealed class AcceptCredentialsMetadata(CredentialKinds kinds)
{
    /// <summary>The credentials the endpoint accepts.</summary>
    public CredentialKinds Kinds { get; } = kinds;
}
