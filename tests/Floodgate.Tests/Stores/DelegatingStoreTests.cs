using Floodgate.Stores;

namespace Floodgate.Tests.Stores;

/// <summary>The test stores' base, <see cref="DelegatingStore{TInner}"/>, forwards the whole store interface.</summary>
public sealed class DelegatingStoreTests
{
    [Fact]
    public void Every_member_of_the_store_interface_is_forwarded_and_can_be_overridden()
    {
        // A member the base left out would fall to the interface's default (or fail to compile, if it has none): a
        // default DecideStagesAsync splits the inner store's one round trip into one per stage.
        var type = typeof(DelegatingStore<IRateLimitStore>);
        var map = type.GetInterfaceMap(typeof(IRateLimitStore));
        Assert.NotEmpty(map.TargetMethods);
        Assert.All(map.TargetMethods, method =>
        {
            Assert.Equal(type, method.DeclaringType);
            Assert.True(method.IsPublic && method.IsVirtual && !method.IsFinal, $"{method.Name} cannot be overridden");
        });
    }
}
