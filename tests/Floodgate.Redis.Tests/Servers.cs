namespace Floodgate.Redis.Tests;

// The suites that run on every server the store claims: each is an abstract class of tests, run once per server by
// the classes below. redis-server's share one server (RedisCollection), Garnet's another (GarnetCollection); the
// suites that start servers of their own take the kind. The suites not listed here (Cluster, Sentinel, TLS, faults,
// hosting, replica shares) run on redis-server only: docs/redis.md, Servers, says why.
[Collection(RedisCollection.Name)]
public sealed class StoreTestsOnRedis(RedisFixture fixture) : StoreTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class StoreTestsOnGarnet(GarnetFixture fixture) : StoreTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class StagedTestsOnRedis(RedisFixture fixture) : StagedTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class StagedTestsOnGarnet(GarnetFixture fixture) : StagedTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class EngineTestsOnRedis(RedisFixture fixture) : EngineTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class EngineTestsOnGarnet(GarnetFixture fixture) : EngineTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class AccuracyTestsOnRedis(RedisFixture fixture) : AccuracyTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class AccuracyTestsOnGarnet(GarnetFixture fixture) : AccuracyTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class ClockTestsOnRedis(RedisFixture fixture) : ClockTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class ClockTestsOnGarnet(GarnetFixture fixture) : ClockTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class DifferentialTestsOnRedis(RedisFixture fixture) : DifferentialTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class DifferentialTestsOnGarnet(GarnetFixture fixture) : DifferentialTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class DecideProtocolTestsOnRedis(RedisFixture fixture) : DecideProtocolTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class DecideProtocolTestsOnGarnet(GarnetFixture fixture) : DecideProtocolTests(fixture);

public sealed class CoalescingTestsOnRedis() : CoalescingTests(ServerKind.Redis);

public sealed class CoalescingTestsOnGarnet() : CoalescingTests(ServerKind.Garnet);

[Collection(RedisCollection.Name)]
public sealed class LargeCallTestsOnRedis(RedisFixture fixture) : LargeCallTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class LargeCallTestsOnGarnet(GarnetFixture fixture) : LargeCallTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class RenewalTestsOnRedis(RedisFixture fixture) : RenewalTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class RenewalTestsOnGarnet(GarnetFixture fixture) : RenewalTests(fixture);

[Collection(RedisCollection.Name)]
public sealed class AlwaysChargedDifferentialTestsOnRedis(RedisFixture fixture) : AlwaysChargedDifferentialTests(fixture);

[Collection(GarnetCollection.Name)]
public sealed class AlwaysChargedDifferentialTestsOnGarnet(GarnetFixture fixture) : AlwaysChargedDifferentialTests(fixture);
