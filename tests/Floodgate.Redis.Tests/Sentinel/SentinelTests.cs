using System.Collections.Concurrent;
using System.Diagnostics;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Xunit.Abstractions;

namespace Floodgate.Redis.Tests;

/// <summary>The store through Redis Sentinel: a real master, replica and three Sentinels, and real failovers.</summary>
public sealed class SentinelTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMilliseconds(100);

    // Scheduling slack on a shared 2-core machine: a decision may be answered a little after its timeout fires.
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(250);

    private static readonly string ScriptSha = TestStores.ScriptSha;

    [Fact]
    public async Task The_store_finds_the_master_through_Sentinel_and_decides_there()
    {
        using var topology = await Task.Run(SentinelTopology.Start);
        await using var store = await TestStores.ConnectAsync(topology.Configuration, prefix: "sn");
        await AssertDecidesOnMasterAsync(store, topology.Master, "sentinel");

        // The state and the script are on the master; the replica has the state by replication only, and no script.
        Assert.Single(topology.Master.Cli("--scan", "--pattern", "sn:*").Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("0", topology.Replica.Cli("SCRIPT", "EXISTS", ScriptSha));
    }

    [Fact]
    public async Task A_decision_never_goes_to_a_replica()
    {
        using var topology = await Task.Run(SentinelTopology.Start);
        var check = new RateLimitCheck(Limit.FixedWindow(new Rate(1, 1, RateUnit.Hour)), StoreKey.Create("replica", "alice"), 1, false);
        await using (var master = await TestStores.ConnectAsync(topology.Master, o => o.OverLimitCache = false, prefix: "rp"))
        {
            Assert.True((await master.DecideOneAsync(check)).Committed);
        }

        await Task.Run(topology.WaitForReplication);

        // A connection that reaches only the replica: a denial read there would look like an answer from Redis, but
        // the replica's state may be stale and it cannot commit; the store asks only primaries, so this is a failure.
        await using var store = await TestStores.ConnectAsync(topology.Replica, o =>
        {
            o.OverLimitCache = false;
            o.Timeout = Timeout;
            o.FailureMode = StoreFailureMode.Closed;
        }, prefix: "rp");
        Assert.True(store.Connection.IsConnected);
        for (var i = 0; i < 3; i++)
        {
            var outcome = await store.DecideOneAsync(check);
            Assert.True(outcome.IsStoreFailure, $"decision {i} was answered by the replica");
            Assert.False(outcome.Outcome.IsAllowed);
        }

        Assert.Equal("0", topology.Replica.Cli("SCRIPT", "EXISTS", ScriptSha));
    }

    [Fact]
    public async Task After_a_forced_failover_decisions_go_to_the_promoted_replica_and_none_hangs_meanwhile()
    {
        // The old master stays a master until Sentinel converts it, about 10 s later; writes there until then would be
        // discarded by the conversion. The store follows the Sentinels, not the roles.
        await FailOverAsync(
            "forced",
            topology => Assert.Equal("OK", topology.Sentinels[0].Cli("SENTINEL", "FAILOVER", SentinelTopology.ServiceName)),
            _ => { });
    }

    [Fact]
    public async Task When_the_master_dies_decisions_follow_on_failure_within_the_timeout_until_Sentinel_promotes_the_replica()
    {
        await FailOverAsync(
            "killed",
            topology => topology.Master.Kill(),
            load => Assert.True(load.Failures > 0, "no decision met the time without a master"));
    }

    /// <summary>
    /// Spends a budget through Sentinel, starts a load, fails the master over with <paramref name="trigger"/>, and checks
    /// that the store moved to the promoted replica, that no decision of the load took longer than its bound, and that
    /// the budget carried over.
    /// </summary>
    /// <remarks>With <paramref name="certificates"/>, every node and Sentinel speaks only mutual TLS, and so does the store.</remarks>
    private async Task FailOverAsync(string name, Action<SentinelTopology> trigger, Action<Load> checkLoad, TestCertificates? certificates = null)
    {
        using var topology = await Task.Run(() => SentinelTopology.Start(null, null, certificates is null ? null : RedisTlsFiles.Of(certificates, mutual: true)));
        await using var store = await ConnectAsync(topology, certificates);
        var carried = await SpendAsync(store, topology, name);

        await using var load = Load.Start(store);
        var failover = Stopwatch.StartNew();
        trigger(topology);
        var promoted = await Task.Run(() => topology.WaitForMaster(topology.Replica));
        var named = failover.Elapsed;
        await AssertMovesToAsync(store, promoted, name);
        output.WriteLine($"{name}: every Sentinel named the new master after {named.TotalMilliseconds:F0} ms, decisions landed there after {failover.Elapsed.TotalMilliseconds:F0} ms");
        await load.StopAsync();

        load.AssertBounded(output, name);
        checkLoad(load);
        await AssertOnNewMasterAsync(store, promoted, carried, name);
    }

    [Fact]
    public async Task A_store_starts_while_no_Sentinel_answers_and_finds_the_master_when_they_are_back()
    {
        using var topology = await Task.Run(SentinelTopology.Start);
        foreach (var sentinel in topology.Sentinels)
        {
            sentinel.Kill();
        }

        var watch = Stopwatch.StartNew();
        await using var store = await TestStores.ConnectAsync(topology.Configuration + ",connectTimeout=500", o =>
        {
            o.Timeout = Timeout;
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerDuration = TimeSpan.FromMilliseconds(200);
        });
        output.WriteLine($"connecting without Sentinels took {watch.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"connecting took {watch.Elapsed}");
        Assert.Throws<InvalidOperationException>(() => store.Connection);

        var check = new RateLimitCheck(Limit.FixedWindow(new Rate(3, 1, RateUnit.Hour)), StoreKey.Create("late", "alice"), 1, false);
        for (var i = 0; i < 5; i++)
        {
            var one = Stopwatch.StartNew();
            var outcome = await store.DecideOneAsync(check);
            Assert.True(one.Elapsed <= Timeout + Slack, $"decision {i} took {one.Elapsed.TotalMilliseconds} ms");
            Assert.True(outcome.IsStoreFailure && !outcome.Outcome.IsAllowed, $"decision {i} was not answered by on_failure=closed");
        }

        foreach (var sentinel in topology.Sentinels)
        {
            sentinel.Restart();
        }

        Assert.True(await DecidedInRedisAsync(store, 3), "the store did not find the master within 20 s of the Sentinels' return");
        var key = TestStores.KeyOf(store, check);
        Assert.True((await store.DecideOneAsync(check)).Committed);
        Assert.Equal("1", topology.Master.Cli("EXISTS", key));
    }

    [Fact]
    public async Task The_store_authenticates_to_password_protected_Sentinels_and_master_and_follows_a_failover()
    {
        // Different passwords: credentials sent to the wrong side (or not at all) are refused.
        using var topology = await Task.Run(() => SentinelTopology.Start(new RedisCredentials(null, "master-secret"), new RedisCredentials(null, "sentinel-secret")));
        var logs = new FakeLogger<RedisStore>();
        await using var store = await TestStores.ConnectAsync(
            topology.Configuration + ",password=master-secret,sentinelPassword=sentinel-secret",
            o => o.OverLimitCache = false,
            prefix: "pw",
            logger: logs);
        Assert.True(await DecidedInRedisAsync(store, 1), "the store never reached the master");
        await AssertDecidesOnMasterAsync(store, topology.Master, "password");

        // The connection to the promoted replica is made with the master's password too.
        Assert.Equal("OK", topology.Sentinels[0].Cli("SENTINEL", "FAILOVER", SentinelTopology.ServiceName));
        var promoted = await Task.Run(() => topology.WaitForMaster(topology.Replica));
        await AssertMovesToAsync(store, promoted, "password");
        Assert.Contains(logs.Lines(), m => m.Contains($"names 127.0.0.1:{promoted.Port} the master", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_store_authenticates_as_ACL_users_to_the_Sentinels_and_the_master()
    {
        // The default user is off on every node and Sentinel: a password without its user name is refused.
        using var topology = await Task.Run(() => SentinelTopology.Start(new RedisCredentials("floodgate", "master-secret"), new RedisCredentials("watcher", "sentinel-secret")));
        await using var store = await TestStores.ConnectAsync(
            topology.Configuration + ",user=floodgate,password=master-secret,sentinelUser=watcher,sentinelPassword=sentinel-secret",
            o => o.OverLimitCache = false,
            prefix: "acl");
        Assert.True(await DecidedInRedisAsync(store, 1), "the store never reached the master");
        await AssertDecidesOnMasterAsync(store, topology.Master, "acl");
    }

    [Fact]
    public async Task With_a_wrong_Sentinel_password_the_store_starts_and_decisions_follow_on_failure_within_the_timeout()
    {
        using var topology = await Task.Run(() => SentinelTopology.Start(new RedisCredentials(null, "master-secret"), new RedisCredentials(null, "sentinel-secret")));
        var logs = new FakeLogger<RedisStore>();
        var watch = Stopwatch.StartNew();
        await using var store = await TestStores.ConnectAsync(
            topology.Configuration + ",password=master-secret,sentinelPassword=wrong,connectTimeout=500",
            o =>
            {
                o.Timeout = Timeout;
                o.FailureMode = StoreFailureMode.Closed;
                o.BreakerDuration = TimeSpan.FromMilliseconds(200);
            },
            prefix: "wrong",
            logger: logs);
        output.WriteLine($"connecting with a wrong Sentinel password took {watch.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"connecting took {watch.Elapsed}");

        await AssertEveryDecisionFollowsOnFailureAsync(store, "wrong");

        Assert.Throws<InvalidOperationException>(() => store.Connection);
        Assert.Equal(string.Empty, topology.Master.Cli("--scan", "--pattern", "wrong:*"));

        // The warning says why no Sentinel answers: they refused the credentials.
        foreach (var message in logs.Lines())
        {
            output.WriteLine(message);
        }

        Assert.Contains(logs.Lines(), m => m.Contains("No Redis Sentinel names a master for 'mymaster'", StringComparison.Ordinal) && m.Contains("NOAUTH", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Over_mutual_TLS_the_CA_and_client_certificate_reach_the_Sentinels_and_the_master_alike()
    {
        // Every node and Sentinel listens on TLS only, requires a client certificate of the CA, and replicates and
        // monitors over TLS: a store that skipped TLS, or the CA or the certificate, on either side would reach nothing.
        using var certificates = TestCertificates.Create();
        using var topology = await Task.Run(() => SentinelTopology.Start(null, null, RedisTlsFiles.Of(certificates, mutual: true)));
        Assert.DoesNotContain("PONG", topology.Sentinels[0].PlainCli("PING"), StringComparison.Ordinal);
        Assert.DoesNotContain("PONG", topology.Master.PlainCli("PING"), StringComparison.Ordinal);

        var logs = new FakeLogger<RedisStore>();
        await using var store = await TestStores.ConnectAsync(topology.Configuration, o =>
        {
            UseTls(o, certificates);
            o.OverLimitCache = false;
        }, prefix: "stls", logger: logs);
        Assert.True(await DecidedInRedisAsync(store, 1), "the store never reached the master over TLS");
        await AssertDecidesOnMasterAsync(store, topology.Master, "stls");
        Assert.Equal("0", topology.Replica.Cli("SCRIPT", "EXISTS", ScriptSha));
        Assert.Contains(logs.Lines(), m => m.Contains($"names 127.0.0.1:{topology.Master.Port} the master", StringComparison.Ordinal));
    }

    public static TheoryData<string> UntrustedOverTls() => ["no CA", "another CA", "no client certificate"];

    [Theory]
    [MemberData(nameof(UntrustedOverTls))]
    public async Task Over_mutual_TLS_a_store_the_Sentinels_do_not_trust_or_that_does_not_trust_them_never_connects(string trust)
    {
        using var certificates = TestCertificates.Create();
        using var other = TestCertificates.Create("Another CA");
        using var topology = await Task.Run(() => SentinelTopology.Start(null, null, RedisTlsFiles.Of(certificates, mutual: true)));
        var logs = new FakeLogger<RedisStore>();
        var watch = Stopwatch.StartNew();

        // ssl=true: without a CA nothing else turns TLS on, and the machine's trust store does not know the private CA.
        await using var store = await TestStores.ConnectAsync(
            topology.Configuration + ",ssl=true,connectTimeout=1000",
            o =>
            {
                // One thing wrong each: the store's trust of the Sentinels, or the Sentinels' trust of the store.
                UseTls(o, certificates);
                switch (trust)
                {
                    case "no CA":
                        o.TrustedCertificateAuthority = null;
                        break;
                    case "another CA":
                        o.TrustedCertificateAuthority = other.Authority;
                        break;
                    default:
                        o.ClientCertificate = null;
                        o.ClientCertificateKey = null;
                        break;
                }

                o.Timeout = Timeout;
                o.FailureMode = StoreFailureMode.Closed;
                o.BreakerDuration = TimeSpan.FromMilliseconds(200);
            },
            prefix: "untrusted",
            logger: logs);
        output.WriteLine($"{trust}: connecting took {watch.Elapsed.TotalMilliseconds:F0} ms");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"connecting took {watch.Elapsed}");

        await AssertEveryDecisionFollowsOnFailureAsync(store, "untrusted");

        // No Sentinel was reached, so none named a master, and nothing was written anywhere.
        Assert.Throws<InvalidOperationException>(() => store.Connection);
        Assert.Contains(logs.Lines(), m => m.Contains("No Redis Sentinel names a master for 'mymaster'", StringComparison.Ordinal));
        Assert.Equal(string.Empty, topology.Master.Cli("--scan"));
        Assert.Equal("0", topology.Master.Cli("SCRIPT", "EXISTS", ScriptSha));
    }

    [Fact]
    public async Task Over_mutual_TLS_a_forced_failover_moves_decisions_to_the_promoted_replica_and_none_hangs_meanwhile()
    {
        using var certificates = TestCertificates.Create();
        await FailOverAsync(
            "tls-forced",
            topology => Assert.Equal("OK", topology.Sentinels[0].Cli("SENTINEL", "FAILOVER", SentinelTopology.ServiceName)),
            _ => { },
            certificates);
    }

    [Fact]
    public void The_master_of_the_answer_with_the_highest_configuration_epoch_wins()
    {
        static KeyValuePair<string, string>[] Answer(string ip, string port, string epoch) =>
            [new("name", SentinelTopology.ServiceName), new("ip", ip), new("port", port), new("flags", "master"), new("config-epoch", epoch)];

        // A Sentinel that has not yet heard of the failover (epoch 3) is outvoted by one that has (epoch 4), whatever the order.
        Assert.Equal(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 7002), SentinelMaster.Newest([Answer("127.0.0.1", "7001", "3"), null, Answer("127.0.0.1", "7002", "4")]));
        Assert.Equal(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 7002), SentinelMaster.Newest([Answer("127.0.0.1", "7002", "4"), Answer("127.0.0.1", "7001", "3")]));
        Assert.Equal(new System.Net.DnsEndPoint("redis-1", 6379), SentinelMaster.Newest([Answer("redis-1", "6379", "0")]));

        // Once a failover of epoch 4 was followed, a Sentinel still at epoch 3 cannot move the store back.
        Assert.Null(SentinelMaster.Newest([Answer("127.0.0.1", "7001", "3")], 4, out _));
        Assert.Equal(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 7002), SentinelMaster.Newest([Answer("127.0.0.1", "7001", "3"), Answer("127.0.0.1", "7002", "4")], 4, out var epoch));
        Assert.Equal(4, epoch);

        // Malformed answers name nothing.
        Assert.Null(SentinelMaster.Newest([Answer("127.0.0.1", "0", "9"), Answer("127.0.0.1", "x", "9"), Answer(string.Empty, "7001", "9"), Answer("127.0.0.1", "7001", "-1"), null]));
        Assert.Null(SentinelMaster.Newest([]));
    }

    private static Task<RedisStore> ConnectAsync(SentinelTopology topology, TestCertificates? certificates = null) =>
        TestStores.ConnectAsync(topology.Configuration, o =>
        {
            if (certificates is not null)
            {
                UseTls(o, certificates);
            }

            o.Timeout = Timeout;
            o.FailureMode = StoreFailureMode.Closed;
            o.BreakerFailureThreshold = 3;
            o.BreakerDuration = TimeSpan.FromMilliseconds(200);
            o.OverLimitCache = false;
        });

    /// <summary>Trusts <paramref name="certificates"/>' CA, which turns TLS on, and presents its client certificate.</summary>
    private static void UseTls(RedisStoreOptions options, TestCertificates certificates)
    {
        options.TrustedCertificateAuthority = certificates.Authority;
        options.ClientCertificate = certificates.ClientCertificate;
        options.ClientCertificateKey = certificates.ClientKey;
    }

    /// <summary>Spends 4 of a 10/day quota on the master and waits until the replica has it.</summary>
    private static async Task<RateLimitCheck> SpendAsync(RedisStore store, SentinelTopology topology, string name)
    {
        var check = new RateLimitCheck(Limit.Quota(new Rate(10, 1, RateUnit.Day), null), StoreKey.Create(name, "carried"), 1, false);
        Assert.True(await DecidedInRedisAsync(store, 1), "the store never reached the master");
        for (var i = 0; i < 4; i++)
        {
            var outcome = await store.DecideOneAsync(check);
            Assert.True(outcome.Committed && !outcome.IsStoreFailure, $"decision {i} before the failover failed");
        }

        await Task.Run(topology.WaitForReplication);
        Assert.Equal("0", topology.Replica.Cli("SCRIPT", "EXISTS", ScriptSha));
        return check;
    }

    /// <summary>
    /// Within 5 s of the Sentinels naming <paramref name="promoted"/>, new decisions land there (Sentinel converts the old
    /// master only about 10 s after a failover, so a store following roles rather than Sentinel fails this).
    /// </summary>
    private static async Task AssertMovesToAsync(RedisStore store, RedisServer promoted, string name)
    {
        var deadline = Stopwatch.StartNew();
        for (var i = 0; ; i++)
        {
            var check = new RateLimitCheck(Limit.FixedWindow(new Rate(5, 1, RateUnit.Hour)), StoreKey.Create(name, "move" + i), 1, false);
            var outcome = await store.DecideOneAsync(check);
            var key = TestStores.KeyOf(store, check);
            if (outcome.Committed && promoted.Cli("EXISTS", key) == "1")
            {
                return;
            }

            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(5), $"decisions did not move to the promoted node within 5 s ({i + 1} tried)");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// The promoted node holds the state spent before the failover, takes the new decisions (a read-only replica could
    /// not), and has the script, which the store sent again after NOSCRIPT.
    /// </summary>
    private static async Task AssertOnNewMasterAsync(RedisStore store, RedisServer promoted, RateLimitCheck carried, string name)
    {
        var next = await store.DecideOneAsync(carried);
        Assert.False(next.IsStoreFailure);
        Assert.True(next.Committed);
        Assert.Equal(5, next.Outcome.Remaining);

        var fresh = new RateLimitCheck(Limit.FixedWindow(new Rate(5, 1, RateUnit.Hour)), StoreKey.Create(name, "fresh"), 1, false);
        Assert.True((await store.DecideOneAsync(fresh)).Committed);
        var key = TestStores.KeyOf(store, fresh);
        Assert.StartsWith("master", promoted.Cli("ROLE"), StringComparison.Ordinal);
        Assert.Equal("1", promoted.Cli("EXISTS", key));
        Assert.Equal("1", promoted.Cli("SCRIPT", "EXISTS", ScriptSha));
        Assert.True(store.IsCircuitClosed);
    }

    /// <summary>Spends a 3/hour limit through <paramref name="store"/> and finds its state and the script on <paramref name="master"/>.</summary>
    private static async Task AssertDecidesOnMasterAsync(RedisStore store, RedisServer master, string name)
    {
        var key = await TestStores.SpendThreePerHourAsync(store, name);
        Assert.Equal("1", master.Cli("EXISTS", key));
        Assert.Equal("1", master.Cli("SCRIPT", "EXISTS", ScriptSha));
    }

    /// <summary>Decides a probe until <paramref name="successes"/> decisions in a row came from Redis; bounded to 20 s.</summary>
    private static Task<bool> DecidedInRedisAsync(RedisStore store, int successes) =>
        TestStores.DecidedInRedisAsync(store, new RateLimitCheck(Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second)), StoreKey.Create("probe", "steady"), 1, false), successes);

    /// <summary>Decides one key every 10 ms in the background, timing each decision.</summary>
    private sealed class Load : IAsyncDisposable
    {
        private readonly ConcurrentQueue<(TimeSpan Took, StoreOutcome Outcome)> _decisions = new();
        private readonly CancellationTokenSource _stop = new();
        private Task _loop = Task.CompletedTask;

        public int Failures => _decisions.Count(d => d.Outcome.IsStoreFailure);

        public static Load Start(RedisStore store)
        {
            var load = new Load();
            var check = new RateLimitCheck(Limit.Gcra(new Rate(1_000_000, 1, RateUnit.Second)), StoreKey.Create("load", "bob"), 1, false);
            load._loop = Task.Run(async () =>
            {
                while (!load._stop.IsCancellationRequested)
                {
                    var watch = Stopwatch.StartNew();
                    var outcome = await store.DecideOneAsync(check);
                    load._decisions.Enqueue((watch.Elapsed, outcome));
                    await Task.Delay(10);
                }
            });
            return load;
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
        }

        /// <summary>Every decision took at most the timeout and was either Redis's answer or the failure mode's (closed: denied).</summary>
        public void AssertBounded(ITestOutputHelper output, string what)
        {
            var decisions = _decisions.ToArray();
            var slowest = decisions.Max(d => d.Took);
            output.WriteLine($"{what}: {decisions.Length} decisions, {Failures} by the failure mode, the slowest took {slowest.TotalMilliseconds:F1} ms");
            Assert.True(decisions.Length > 20, $"only {decisions.Length} decisions were made");
            Assert.True(slowest <= Timeout + Slack, $"the slowest decision took {slowest.TotalMilliseconds} ms");
            Assert.All(decisions, d => Assert.Equal(!d.Outcome.IsStoreFailure, d.Outcome.Outcome.IsAllowed));
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _stop.Dispose();
        }
    }

    /// <summary>For 1.5 s, past the first polls of the Sentinels, every decision is on_failure's (closed), each within the timeout.</summary>
    private static async Task AssertEveryDecisionFollowsOnFailureAsync(RedisStore store, string name)
    {
        var check = new RateLimitCheck(Limit.FixedWindow(new Rate(3, 1, RateUnit.Hour)), StoreKey.Create(name, "alice"), 1, false);
        var span = Stopwatch.StartNew();
        for (var i = 0; span.Elapsed < TimeSpan.FromSeconds(1.5); i++)
        {
            var one = Stopwatch.StartNew();
            var outcome = await store.DecideOneAsync(check);
            Assert.True(one.Elapsed <= Timeout + Slack, $"decision {i} took {one.Elapsed.TotalMilliseconds} ms");
            Assert.True(outcome.IsStoreFailure && !outcome.Outcome.IsAllowed, $"decision {i} was not answered by on_failure=closed");
            await Task.Delay(50);
        }
    }
}
