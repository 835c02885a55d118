using Floodgate.ApiKeys;
using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Identity;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

// API keys: the key store beside the store in force, and the identity resolver that accepts keys beside JWTs.
internal sealed partial class GatewayRuntime
{
    /// <summary>Where the API keys live: beside the store in force (in process, or in its Redis).</summary>
    public SwitchingApiKeyStore ApiKeys { get; } = new(new MemoryApiKeyStore());

    /// <summary>The JWT resolver in force, alone or beside the API keys; <see langword="null"/> without an <c>identity.jwt</c> section.</summary>
    public JwtIdentityResolver? JwtResolver => _identity.Current switch
    {
        JwtIdentityResolver jwt => jwt,
        CredentialIdentityResolver { Tokens: JwtIdentityResolver jwt } => jwt,
        _ => null,
    };

    /// <summary>Puts what lives beside <paramref name="opened"/> in force: its overrides, bans and API keys.</summary>
    internal void UseBesideStore(OpenedStore opened)
    {
        UseOverrides(opened.Overrides);
        UseBans(opened);
        ApiKeys.Current = opened.ApiKeys;
    }

    /// <summary><paramref name="tokens"/>, beside an API key resolver when the policy has an <c>api_keys</c> section.</summary>
    private CredentialIdentityResolver? WithApiKeys(IIdentityResolver? tokens, ApiKeyIdentityOptions? keys) =>
        keys is null ? null : new CredentialIdentityResolver(tokens, new ApiKeyIdentityResolver(ApiKeys, keys, _time, _loggerFactory.CreateLogger<ApiKeyIdentityResolver>()));
}
