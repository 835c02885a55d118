using Floodgate.AspNetCore;
using Floodgate.AspNetCore.Http;
using Floodgate.Rules;
using Floodgate.Stores;
using Yarp.ReverseProxy.Configuration;

namespace Floodgate.Gateway.Policy;

/// <summary>A validated policy file: everything the gateway needs to proxy and limit. Immutable; a reload builds a new one.</summary>
public sealed class GatewayPolicy
{
    /// <summary>The file it was read from.</summary>
    public required string Source { get; init; }

    /// <summary>A short hash of the file's text, to tell versions apart in logs and <c>/readyz</c>.</summary>
    public required string Version { get; init; }

    /// <summary>Every rate limit rule, by tier.</summary>
    public required RateLimitPolicy Rules { get; init; }

    /// <summary>Mitigation timeouts of edge rules, by rule name.</summary>
    public required IReadOnlyDictionary<string, TimeSpan> Bans { get; init; }

    /// <summary>CIDR ranges whose forwarding headers are believed.</summary>
    public required IReadOnlyList<string> TrustedProxies { get; init; }

    /// <summary>The one forwarding header the trusted proxies write.</summary>
    public ForwardedHeader ForwardedHeader { get; init; } = ForwardedHeader.XForwardedFor;

    /// <summary>What happens to requests without credentials.</summary>
    public AnonymousPolicy Anonymous { get; init; } = AnonymousPolicy.Allow;

    /// <summary>Whether responses carry the IETF limit fields.</summary>
    public bool IetfHeaders { get; init; } = true;

    /// <summary>Whether responses carry the <c>X-RateLimit-*</c> fields.</summary>
    public bool LegacyHeaders { get; init; }

    /// <summary>The proxy's routes.</summary>
    public required IReadOnlyList<RouteConfig> Routes { get; init; }

    /// <summary>The proxy's clusters.</summary>
    public required IReadOnlyList<ClusterConfig> Clusters { get; init; }

    /// <summary>Where limit state lives.</summary>
    public StorePolicy Store { get; init; } = new();

    /// <summary>How bearer tokens are validated; <see langword="null"/> when the policy has no identity section.</summary>
    public JwtPolicy? Jwt { get; init; }

    /// <summary>The options of the Floodgate middleware this policy puts in force.</summary>
    public FloodgateOptions ToOptions()
    {
        var options = new FloodgateOptions
        {
            Policy = Rules,
            Anonymous = Anonymous,
            ForwardedHeader = ForwardedHeader,
            Headers = new RateLimitHeaderOptions { Ietf = IetfHeaders, Legacy = LegacyHeaders },
        };
        foreach (var range in TrustedProxies)
        {
            options.TrustedProxies.Add(range);
        }

        foreach (var (rule, ban) in Bans)
        {
            options.Bans[rule] = ban;
        }

        return options;
    }
}

/// <summary>The kind of store.</summary>
public enum StoreKind
{
    /// <summary>The embedded in-memory store: one replica.</summary>
    Memory,

    /// <summary>A Redis or Valkey server shared by every replica.</summary>
    Redis,
}

/// <summary>The <c>store</c> section.</summary>
public sealed record StorePolicy
{
    /// <summary>The kind.</summary>
    public StoreKind Kind { get; init; } = StoreKind.Memory;

    /// <summary>For the memory store, the most keys it keeps.</summary>
    public int MaxEntries { get; init; } = 1_000_000;

    /// <summary>For Redis, the StackExchange.Redis configuration string, such as <c>localhost:6379</c>.</summary>
    public string? Configuration { get; init; }

    /// <summary>For Redis, what happens when it cannot be reached.</summary>
    public StoreFailureMode OnFailure { get; init; } = StoreFailureMode.Open;

    /// <summary>For Redis with <see cref="StoreFailureMode.Local"/>, how many replicas the limit is divided across.</summary>
    public int Replicas { get; init; } = 1;

    /// <summary>For Redis, how long a store call may take before the failure mode applies; the store's default (50 ms) when unset.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>For Redis, the prefix of every key; the store's default (<c>fg</c>) when unset.</summary>
    public string? KeyPrefix { get; init; }

    /// <summary>
    /// For Redis over TLS, a PEM file of the certificate authority (or authorities) that signed the servers' certificates
    /// (<c>tls_ca</c>); implies TLS. Checked when the policy is loaded.
    /// </summary>
    public string? TlsCa { get; init; }

    /// <summary>For Redis with mutual TLS, the PEM client certificate presented to the servers (<c>tls_client_cert</c>); implies TLS.</summary>
    public string? TlsClientCertificate { get; init; }

    /// <summary>The PEM private key of <see cref="TlsClientCertificate"/> (<c>tls_client_key</c>); when unset, read from the certificate file.</summary>
    public string? TlsClientKey { get; init; }
}

/// <summary>The <c>identity.jwt</c> section.</summary>
public sealed record JwtPolicy
{
    /// <summary>The OIDC authority: its discovery document names the issuer and the JWKS.</summary>
    public string? Authority { get; init; }

    /// <summary>An explicit JWKS URL.</summary>
    public string? JwksUrl { get; init; }

    /// <summary>Static keys: paths of JWK, JWKS or PEM files.</summary>
    public IReadOnlyList<string> KeyFiles { get; init; } = [];

    /// <summary>A hash of the key files' contents as read with the policy: a reload that finds them changed rebuilds the identity.</summary>
    public string KeyFilesFingerprint { get; init; } = string.Empty;

    /// <summary>A shared secret for HS256/384/512; only with it are HS* tokens accepted.</summary>
    public string? Secret { get; init; }

    /// <summary>Accepted issuers; from discovery when empty.</summary>
    public IReadOnlyList<string> Issuers { get; init; } = [];

    /// <summary>Accepted audiences.</summary>
    public IReadOnlyList<string> Audiences { get; init; } = [];

    /// <summary>The claims that together name the subject. Default <c>sub</c>.</summary>
    public IReadOnlyList<string> SubjectClaims { get; init; } = ["sub"];

    /// <summary>The claim that names the plan.</summary>
    public string PlanClaim { get; init; } = "plan";

    /// <summary>The plan of tokens without the plan claim.</summary>
    public string? DefaultPlan { get; init; }

    /// <summary>The clock skew allowed on lifetimes.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Accepted algorithms; default RS*, PS*, ES* (and HS* with a secret).</summary>
    public IReadOnlyList<string> Algorithms { get; init; } = [];

    /// <summary>Whether metadata and JWKS must be fetched over HTTPS. Default on; off for local development.</summary>
    public bool RequireHttps { get; init; } = true;
}
