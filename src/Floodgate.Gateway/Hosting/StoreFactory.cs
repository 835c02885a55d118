using Floodgate.Gateway.Policy;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>Opens the store a policy's <c>store</c> section names, with the options the section read.</summary>
internal static class StoreFactory
{
    /// <exception cref="ArgumentException">The store cannot be opened with these settings (the caller names the file).</exception>
    public static (IRateLimitStore Store, string Kind, IDisposable? Owned) Create(GatewayPolicy policy, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (policy.RedisStore is { } redis)
        {
            var store = RedisStore.Connect(redis, time, loggerFactory.CreateLogger<RedisStore>());
            return (store, "redis", store);
        }

        var memory = policy.MemoryStore ?? new MemoryStoreOptions();
        memory.Validate();
        return (new MemoryStore(memory, time), "memory", null);
    }
}
