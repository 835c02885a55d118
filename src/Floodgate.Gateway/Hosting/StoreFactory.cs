using Floodgate.Gateway.Policy;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>Opens the store a policy's <c>store</c> section names.</summary>
internal static class StoreFactory
{
    public static (IRateLimitStore Store, string Kind, IDisposable? Owned) Create(StorePolicy policy, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        switch (policy.Kind)
        {
            case StoreKind.Memory:
                var options = new MemoryStoreOptions { MaxEntries = policy.MaxEntries };
                options.Validate();
                return (new MemoryStore(options, time), "memory", null);
            default:
                throw new PolicyException("store.kind: this build of the gateway has no Redis store; use kind: memory.");
        }
    }
}
