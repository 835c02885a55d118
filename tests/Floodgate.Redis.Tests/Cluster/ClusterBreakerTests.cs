using System.Diagnostics;
using System.Globalization;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>
/// One master of a three-master cluster of its own (<c>cluster-require-full-coverage no</c>) dies or stalls: only
/// its keys follow on_failure; the two healthy masters' keys keep being decided in Redis.
/// </summary>
public sealed class ClusterBreakerTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(500);

    // Scheduling slack on a shared 2-core machine: a decision may be answered a little after its timeout fires.
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(300);

    [Theory]
    [InlineData("killed")]
    [InlineData("stalled")]
    public async Task A_dead_master_fails_only_its_own_keys(string fault)
    {
        // Three masters, no replicas, still serving the slots they own when one of them fails.
        using var cluster = new ClusterFixture("--cluster-require-full-coverage", "no");
        var nodes = cluster.Nodes;
        var logs = new FakeLogger<RedisStore>();
        var stopped = false;
        try
        {
            var prefix = "br" + Guid.NewGuid().ToString("N")[..6];
            await using var store = await TestStores.ConnectAsync(cluster.Configuration, o =>
            {
                o.Timeout = Timeout;
                o.FailureMode = StoreFailureMode.Closed;
                o.OverLimitCache = false;
            }, prefix: prefix, logger: logs);
            var limit = Limit.FixedWindow(new Rate(1_000_000, 1, RateUnit.Hour));
            var checks = Enumerable.Range(0, 30).Select(i => new RateLimitCheck(limit, StoreKey.Create("node", "user" + i), 1, false)).ToArray();

            // Up: every identity decided in Redis (bounded), then each identity's key found on its master.
            foreach (var check in checks)
            {
                Assert.True(await TestStores.DecidedInRedisAsync(store, check, 1), "the store never reached the cluster");
            }

            var victim = nodes[0];
            var onVictim = victim.Cli("--scan", "--pattern", prefix + ":*").Split('\n', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            var dead = checks.Where(c => onVictim.Contains(TestStores.KeyOf(store, c))).ToArray();
            var healthy = checks.Where(c => !onVictim.Contains(TestStores.KeyOf(store, c))).ToArray();
            Assert.True(dead.Length > 3 && healthy.Length > 10, $"{dead.Length} identities on the victim, {healthy.Length} elsewhere");
            Assert.Equal(0, store.Failures);

            if (fault == "killed")
            {
                victim.Kill();
            }
            else
            {
                Signal(victim.Pid, "STOP");
                stopped = true;
            }

            // Rounds of every identity at once, for 6 s: several breaker durations (2 s), so probes come and go.
            var healthyDecisions = 0;
            var healthyInRedis = 0;
            var deadDecisions = 0;
            var slowest = TimeSpan.Zero;
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(6))
            {
                var round = checks.Select(async check =>
                {
                    var one = Stopwatch.StartNew();
                    var outcome = await store.DecideOneAsync(check);
                    return (check, outcome, one.Elapsed);
                }).ToArray();
                foreach (var (check, outcome, elapsed) in await Task.WhenAll(round))
                {
                    if (dead.Contains(check))
                    {
                        deadDecisions++;
                        slowest = elapsed > slowest ? elapsed : slowest;
                        Assert.True(outcome.IsStoreFailure, "a key of the dead master was not answered by on_failure");
                        Assert.False(outcome.Outcome.IsAllowed);
                    }
                    else
                    {
                        healthyDecisions++;
                        healthyInRedis += outcome.IsStoreFailure ? 0 : 1;
                    }
                }

                await Task.Delay(20);
            }

            foreach (var message in logs.Lines())
            {
                output.WriteLine(message);
            }

            output.WriteLine($"{fault}: {healthyInRedis} of {healthyDecisions} healthy-master decisions in Redis; {deadDecisions} on the dead master, the slowest {slowest.TotalMilliseconds:F0} ms; {store.OpenCircuits} breakers open");
            Assert.True(healthyInRedis >= healthyDecisions * 0.95, $"only {healthyInRedis} of {healthyDecisions} healthy-master decisions were decided in Redis");
            Assert.True(slowest <= Timeout + Slack, $"the slowest decision on the dead master took {slowest.TotalMilliseconds} ms");
            Assert.False(store.IsCircuitClosed);
            Assert.Equal(1, store.OpenCircuits);
        }
        finally
        {
            if (stopped)
            {
                Signal(nodes[0].Pid, "CONT");
            }
        }
    }

    /// <summary>Sends a signal to a redis-server this test started, by its PID.</summary>
    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)])!;
        Assert.True(kill.WaitForExit(10_000));
        Assert.Equal(0, kill.ExitCode);
    }
}
