namespace Floodgate.Envoy.Tests;

/// <summary>
/// The tests that share one redis-server (<see cref="RedisFixture"/>). Declared here, not beside the fixture: xunit
/// finds collection definitions only in the test assembly.
/// </summary>
[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "redis";
}
