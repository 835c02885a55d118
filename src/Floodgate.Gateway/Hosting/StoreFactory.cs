using Floodgate.Gateway.Policy;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>Opens the store a policy's <c>store</c> section names.</summary>
internal static class StoreFactory
{
    /// <exception cref="ArgumentException">The store cannot be opened with these settings (the caller names the file).</exception>
    public static (IRateLimitStore Store, string Kind, IDisposable? Owned) Create(StorePolicy policy, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (policy.Kind == StoreKind.Memory)
        {
            var memory = new MemoryStoreOptions { MaxEntries = policy.MaxEntries };
            memory.Validate();
            return (new MemoryStore(memory, time), "memory", null);
        }

        var options = new RedisStoreOptions
        {
            Configuration = policy.Configuration,
            FailureMode = policy.OnFailure == StoreFailureMode.Default ? StoreFailureMode.Open : policy.OnFailure,
            Replicas = policy.Replicas,
        };
        if (policy.Timeout is { } timeout)
        {
            options.Timeout = timeout;
        }

        if (policy.KeyPrefix is { } prefix)
        {
            options.KeyPrefix = prefix;
        }

        options.TrustedCertificateAuthority = policy.TlsCa is { } ca ? PolicyLoader.ExpandHome(ca) : null;
        options.ClientCertificate = policy.TlsClientCertificate is { } certificate ? PolicyLoader.ExpandHome(certificate) : null;
        options.ClientCertificateKey = policy.TlsClientKey is { } key ? PolicyLoader.ExpandHome(key) : null;

        var store = RedisStore.Connect(options, time, loggerFactory.CreateLogger<RedisStore>());
        return (store, "redis", store);
    }
}
