using Floodgate.Stores;
using Floodgate.Tls;

namespace Floodgate.Redis;

/// <summary>Options of the <see cref="RedisStore"/>.</summary>
public sealed class RedisStoreOptions
{
    /// <summary>The longest <see cref="KeyPrefix"/>.</summary>
    public const int MaxKeyPrefixLength = 64;

    /// <summary>
    /// The StackExchange.Redis configuration string, such as <c>localhost:6379</c>,
    /// <c>redis-0:6379,redis-1:6379,password=...,ssl=true</c> or, for Sentinel, <c>sentinel-0:26379,serviceName=mymaster</c>.
    /// Required when the store connects by itself.
    /// </summary>
    public string? Configuration { get; set; }

    /// <summary>
    /// A PEM file of the certificate authority (or authorities) that signed the Redis servers' certificates, for servers
    /// whose certificates a private authority signed. Setting it turns TLS on (as <c>ssl=true</c> would), and a server is
    /// then trusted only when its certificate is valid for server authentication, names the host connected to (or
    /// <c>sslHost=</c>) and chains to one of these authorities; the machine's trust store is not consulted and revocation
    /// is not checked. Read when the store connects by itself; ignored for a connection the caller passes.
    /// </summary>
    public string? TrustedCertificateAuthority { get; set; }

    /// <summary>
    /// A PEM certificate this client presents to servers that require client certificates (mutual TLS; Redis's
    /// <c>tls-auth-clients yes</c>). Setting it turns TLS on. Read when the store connects by itself.
    /// </summary>
    public string? ClientCertificate { get; set; }

    /// <summary>
    /// The PEM private key of <see cref="ClientCertificate"/>; when unset, the key is read from the
    /// <see cref="ClientCertificate"/> file itself.
    /// </summary>
    public string? ClientCertificateKey { get; set; }

    /// <summary>The first segment of every key: keys look like <c>&lt;prefix&gt;:{&lt;identity&gt;}:&lt;key&gt;</c>; printable ASCII without braces, colons or spaces. Default: <c>fg</c>.</summary>
    public string KeyPrefix { get; set; } = "fg";

    /// <summary>
    /// How long one decision may wait for Redis before it is answered by <see cref="FailureMode"/>. Default: 50 ms.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How the store answers while Redis cannot be reached. Default: <see cref="StoreFailureMode.Open"/>.</summary>
    public StoreFailureMode FailureMode { get; set; } = StoreFailureMode.Open;

    /// <summary>
    /// How many replicas share the limits, for <see cref="StoreFailureMode.Local"/>: each replica then allows its share,
    /// the limit divided by this count (at least 1). Default: 1.
    /// </summary>
    public int Replicas { get; set; } = 1;

    /// <summary>How many failed calls in a row open the circuit breaker. Default: 5.</summary>
    public int BreakerFailureThreshold { get; set; } = 5;

    /// <summary>
    /// How long the circuit breaker stays open, answering by <see cref="FailureMode"/> without calling Redis, before one
    /// call probes whether Redis is back. Default: 2 s.
    /// </summary>
    public TimeSpan BreakerDuration { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Whether keys over their limit are answered in this process, without Redis, until they would be allowed again.
    /// Default: on.
    /// </summary>
    public bool OverLimitCache { get; set; } = true;

    /// <summary>The most keys the over-limit cache holds. Default: 100,000 (a few MB).</summary>
    public int OverLimitCacheSize { get; set; } = 100_000;

    /// <summary>
    /// In leased mode (<see cref="Floodgate.Limits.Limit.LeasedSlice"/>), how long a replica may spend a slice it took
    /// before the rest is dropped. Default: 1 s.
    /// </summary>
    public TimeSpan LeaseSliceLifetime { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The options of the in-memory store used by <see cref="StoreFailureMode.Local"/>.</summary>
    public MemoryStoreOptions LocalStore { get; set; } = new() { MaxEntries = 100_000 };

    /// <summary>Throws when an option is out of range, or a TLS file cannot be used, with a message naming it.</summary>
    /// <param name="requireConfiguration">Whether <see cref="Configuration"/> must be set (the store connects by itself).</param>
    /// <exception cref="ArgumentException">An option is missing or out of range.</exception>
    public void Validate(bool requireConfiguration = true) => Validate(requireConfiguration, checkTlsFiles: true);

    /// <summary>
    /// As <see cref="Validate(bool)"/>; <paramref name="checkTlsFiles"/> false skips reading the TLS files, for a store
    /// on a caller's connection (which ignores them), one whose files were just checked on connecting, or a host that
    /// checks them itself (<see cref="CheckTrustedCertificateAuthority"/>, <see cref="CheckClientCertificate"/>).
    /// </summary>
    /// <param name="requireConfiguration">Whether <see cref="Configuration"/> must be set (the store connects by itself).</param>
    /// <param name="checkTlsFiles">Whether to read the TLS files and refuse them when the store could not use them.</param>
    /// <exception cref="ArgumentException">An option is missing or out of range.</exception>
    public void Validate(bool requireConfiguration, bool checkTlsFiles)
    {
        if (requireConfiguration && string.IsNullOrWhiteSpace(Configuration))
        {
            throw new ArgumentException("The Redis configuration is required, such as 'localhost:6379'.", nameof(Configuration));
        }

        if (string.IsNullOrEmpty(KeyPrefix) || KeyPrefix.Length > MaxKeyPrefixLength
            || KeyPrefix.Any(static c => c is <= ' ' or > '~' or '{' or '}' or ':'))
        {
            // Printable ASCII only: the key is spelled one byte a character, and a character outside ASCII would be
            // truncated (even into a brace, splitting an identity's keys across cluster slots).
            throw new ArgumentException(
                $"The key prefix (KeyPrefix) '{KeyPrefix}' must be 1 to {MaxKeyPrefixLength} printable ASCII characters without braces, colons or spaces.",
                nameof(KeyPrefix));
        }

        if (Timeout < TimeSpan.FromMilliseconds(1) || Timeout > TimeSpan.FromSeconds(30))
        {
            throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "The Redis timeout must be between 1 ms and 30 s; a few tens of milliseconds is typical.");
        }

        if (FailureMode is not (StoreFailureMode.Open or StoreFailureMode.Closed or StoreFailureMode.Local))
        {
            throw new ArgumentOutOfRangeException(nameof(FailureMode), FailureMode, "The failure mode must be open, closed or local.");
        }

        if (Replicas < 1 || Replicas > 100_000)
        {
            throw new ArgumentOutOfRangeException(nameof(Replicas), Replicas, "The replica count must be between 1 and 100,000.");
        }

        if (BreakerFailureThreshold < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(BreakerFailureThreshold), BreakerFailureThreshold, "The breaker must open after at least one failure.");
        }

        if (BreakerDuration < TimeSpan.FromMilliseconds(1) || BreakerDuration > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(BreakerDuration), BreakerDuration, "The breaker duration must be between 1 ms and 10 minutes.");
        }

        if (OverLimitCacheSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(OverLimitCacheSize), OverLimitCacheSize, "The over-limit cache must hold at least one key; turn it off with OverLimitCache = false.");
        }

        if (LeaseSliceLifetime < TimeSpan.FromMilliseconds(1) || LeaseSliceLifetime > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(LeaseSliceLifetime), LeaseSliceLifetime, "The lease slice lifetime must be between 1 ms and 10 minutes.");
        }

        ArgumentNullException.ThrowIfNull(LocalStore, nameof(LocalStore));
        LocalStore.Validate();

        if (checkTlsFiles && TrustedCertificateAuthority is not null)
        {
            foreach (var authority in RedisTls.LoadAuthorities(TrustedCertificateAuthority))
            {
                authority.Dispose();
            }
        }

        if (ClientCertificateKey is not null && ClientCertificate is null)
        {
            throw new ArgumentException("A client certificate key (ClientCertificateKey) needs its certificate (ClientCertificate).", nameof(ClientCertificateKey));
        }

        if (checkTlsFiles && ClientCertificate is not null)
        {
            RedisTls.LoadClientCertificate(ClientCertificate, ClientCertificateKey).Dispose();
        }
    }

    /// <summary>
    /// Reads a <see cref="TrustedCertificateAuthority"/> file as the store does, for a host that checks its configuration
    /// ahead and words its own messages, as the gateway's policy loader does.
    /// </summary>
    /// <param name="path">The PEM file of one or more certificate authorities.</param>
    /// <returns>
    /// What is wrong with the file, worded to follow its name (such as <c>cannot be read: …</c>); <see langword="null"/>
    /// when the store can use it.
    /// </returns>
    public static string? CheckTrustedCertificateAuthority(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var authorities = PemCertificates.ReadAuthorities(path, out var problem);
        foreach (var authority in authorities ?? [])
        {
            authority.Dispose();
        }

        return problem;
    }

    /// <summary>
    /// Reads a <see cref="ClientCertificate"/> and its <see cref="ClientCertificateKey"/> as the store does, for a host that
    /// checks its configuration ahead and words its own messages, as the gateway's policy loader does.
    /// </summary>
    /// <param name="certificatePath">The certificate's PEM file.</param>
    /// <param name="keyPath">The private key's PEM file; <see langword="null"/> when the key is in <paramref name="certificatePath"/>.</param>
    /// <returns>
    /// What is wrong with the files, worded to follow their names (such as <c>cannot be used: …</c>);
    /// <see langword="null"/> when the store can use them.
    /// </returns>
    public static string? CheckClientCertificate(string certificatePath, string? keyPath)
    {
        ArgumentNullException.ThrowIfNull(certificatePath);
        PemCertificates.ReadClientCertificate(certificatePath, keyPath, out var problem)?.Dispose();
        return problem;
    }
}
