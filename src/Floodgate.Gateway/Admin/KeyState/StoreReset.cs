using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Operations;
using Floodgate.Stores;

namespace Floodgate.Gateway.Admin.KeyState;

/// <summary>The store in force as one that can reset a key, under the gateway's switching and timing wrappers.</summary>
internal static class StoreReset
{
    /// <summary>The store in force if it can reset a key (memory, Redis); <see langword="null"/> for a store the host gave that cannot.</summary>
    public static IResettableStore? Of(GatewayRuntime runtime)
    {
        var store = runtime.Store is SwitchingStore switching ? switching.Current : runtime.Store;
        if (store is InstrumentedStore instrumented)
        {
            store = instrumented.Inner;
        }

        return store as IResettableStore;
    }
}
