using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Identity;
using Floodgate.Gateway.Policy.Sections;
using Floodgate.Redis;
using Floodgate.Stores;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Policy;

/// <summary>
/// A validated policy file, as the options of the parts it configures: the middleware's, the identity resolver's, the
/// store's and the proxy's. Not changed once loaded: a reload builds a new one.
/// </summary>
public sealed class GatewayPolicy
{
    /// <summary>The file it was read from.</summary>
    public required string Source { get; init; }

    /// <summary>A short hash of the file's text (and of the key files it names), to tell versions apart in logs and <c>/readyz</c>.</summary>
    public required string Version { get; init; }

    /// <summary>The middleware's options: the rules, bans, trusted proxies, forwarded header, anonymous requests and limit headers.</summary>
    public required FloodgateOptions Floodgate { get; init; }

    /// <summary>How bearer tokens are validated, key files read; <see langword="null"/> when the policy has no <c>identity.jwt</c> section.</summary>
    public JwtIdentityOptions? Jwt { get; init; }

    /// <summary>How API keys are recognized (<c>api_keys</c>); <see langword="null"/> when the policy has no <c>api_keys</c> section.</summary>
    public ApiKeyIdentityOptions? ApiKeys { get; init; }

    /// <summary>The key files <c>identity.jwt.keys</c> names, as written: watched, so that a rotated key is put in force.</summary>
    public IReadOnlyList<string> KeyFiles { get; init; } = [];

    /// <summary>Whether a bypass rule matches client certificates: the TLS listener then asks clients for one.</summary>
    public bool AsksClientCertificates { get; init; }

    /// <summary>The files secrets are read from (a bypass header's, the rate-limit id's keys), full paths: watched, so that a rotated secret is put in force.</summary>
    public IReadOnlyList<string> SecretFiles { get; init; } = [];

    /// <summary>
    /// A fingerprint of the <c>identity.jwt</c> section, the default plan it inherits, the key files' contents and the
    /// <c>api_keys</c> section (empty without the sections): a reload rebuilds the identity resolver only when it changes.
    /// </summary>
    public string IdentityVersion { get; init; } = string.Empty;

    /// <summary>The kind of store the <c>store</c> section names.</summary>
    public StoreKind StoreKind => RedisStore is null ? StoreKind.Memory : StoreKind.Redis;

    /// <summary>The memory store's options; <see langword="null"/> (the defaults) when the store is Redis, or not given.</summary>
    public MemoryStoreOptions? MemoryStore { get; init; }

    /// <summary>The Redis store's options, TLS files' paths expanded; <see langword="null"/> when the store is memory.</summary>
    public RedisStoreOptions? RedisStore { get; init; }

    /// <summary>A fingerprint of the store's options: a reload reopens the store only when it changes.</summary>
    public string StoreVersion => StoreSection.Fingerprint(MemoryStore, RedisStore);

    /// <summary>The admin tokens (<c>admin.tokens</c>), secrets read from their files or environment variables; none by default.</summary>
    internal Admin.Auth.AdminTokenSet AdminTokens { get; init; } = Admin.Auth.AdminTokenSet.None;

    /// <summary>The client certificates the admin port requires besides a token (<c>admin.client_certificates</c>); <see langword="null"/> for none.</summary>
    internal Admin.Auth.AdminClientCertificates? AdminClientCertificates { get; init; }

    /// <summary>Where threshold events are sent: the <c>events</c> section.</summary>
    internal Events.ThresholdEventSettings Events { get; init; } = Gateway.Events.ThresholdEventSettings.None;

    /// <summary>The proxy's routes.</summary>
    public required IReadOnlyList<RouteConfig> Routes { get; init; }

    /// <summary>The proxy's clusters.</summary>
    public required IReadOnlyList<ClusterConfig> Clusters { get; init; }
}

/// <summary>The kind of store.</summary>
public enum StoreKind
{
    /// <summary>The embedded in-memory store: one replica.</summary>
    Memory,

    /// <summary>A Redis or Valkey server shared by every replica.</summary>
    Redis,
}
