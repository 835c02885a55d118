namespace Floodgate.Redis.Tests;

/// <summary>
/// The tests that share one Garnet (<see cref="GarnetFixture"/>), as <see cref="RedisCollection"/>'s share one
/// redis-server. Its tests run beside the redis-server ones, one at a time within the collection.
/// </summary>
[CollectionDefinition(Name)]
public sealed class GarnetCollection : ICollectionFixture<GarnetFixture>
{
    public const string Name = "garnet";
}
