using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Operations;
using Floodgate.Keys;
using Floodgate.Stores;
using Floodgate.Testing;
using Microsoft.Extensions.Time.Testing;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// The gateway's store wrappers pass on the release notices of the store in force (Redis), so that the concurrency
/// queues hear other replicas' releases through them: the instrumented store always, the switching store from the store
/// in force only, also after a switch.
/// </summary>
public sealed class ReleaseNoticeForwardingTests
{
    private static readonly StoreKey Key = StoreKey.Create("reports", "route");

    [Fact]
    public void The_instrumented_and_the_switching_store_pass_on_the_notices_of_the_store_in_force()
    {
        var time = new FakeTimeProvider();
        var first = new NoticingStore(new MemoryStore(timeProvider: time));
        var second = new NoticingStore(new MemoryStore(timeProvider: time));
        using var store = new SwitchingStore(new InstrumentedStore(first, "redis"), "redis", null, time);
        var heard = new List<StoreKey>();
        store.PermitReleased += heard.Add;

        first.Announce(Key);
        Assert.Equal([Key], heard);

        Assert.True(store.Switch(new InstrumentedStore(second, "redis"), "redis", null, TimeSpan.FromSeconds(30)));
        first.Announce(Key);
        Assert.Single(heard);
        second.Announce(Key);
        Assert.Equal(2, heard.Count);
    }

    private sealed class NoticingStore(MemoryStore inner) : DelegatingStore<MemoryStore>(inner), IPermitReleaseNotifier
    {
        public event Action<StoreKey>? PermitReleased;

        public void Announce(StoreKey key) => PermitReleased?.Invoke(key);
    }
}
