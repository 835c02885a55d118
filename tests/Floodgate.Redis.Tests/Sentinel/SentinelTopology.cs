using System.Diagnostics;
using System.Globalization;

namespace Floodgate.Redis.Tests;

/// <summary>
/// A master, one replica (<c>--replicaof</c>) and three Sentinels monitoring them as <see cref="ServiceName"/> with a
/// quorum of two, on free loopback ports, optionally with credentials or over TLS only; every process is ended by its
/// PID on dispose. Sentinel's timeouts are short (down after 1 s) so that a failover takes a few seconds.
/// </summary>
public sealed class SentinelTopology : IDisposable
{
    public const string ServiceName = "mymaster";

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly List<RedisServer> _processes = [];

    private SentinelTopology()
    {
    }

    /// <summary>The node that was the master at the start.</summary>
    public RedisServer Master { get; private set; } = null!;

    /// <summary>The node that was the replica at the start.</summary>
    public RedisServer Replica { get; private set; } = null!;

    public IReadOnlyList<RedisServer> Sentinels { get; private set; } = [];

    /// <summary>The store's configuration: every Sentinel, and the service name.</summary>
    public string Configuration => string.Join(',', Sentinels.Select(s => s.Configuration)) + ",serviceName=" + ServiceName;

    public static SentinelTopology Start() => Start(null, null);

    /// <summary>
    /// Starts the topology with the master and the replica requiring <paramref name="nodeCredentials"/> (each authenticates to
    /// the other as its master with them, and the Sentinels to both), and the Sentinels requiring
    /// <paramref name="sentinelCredentials"/>; either may be <see langword="null"/>. With <paramref name="tls"/> every
    /// node and Sentinel speaks only TLS with those files, to its clients and to each other (<c>tls-replication yes</c>).
    /// </summary>
    public static SentinelTopology Start(RedisCredentials? nodeCredentials, RedisCredentials? sentinelCredentials, RedisTlsFiles? tls = null)
    {
        var topology = new SentinelTopology();
        try
        {
            string[] replication = tls is null ? [] : ["--tls-replication", "yes"];

            // Both nodes carry the master's credentials: either may be the replica after a failover.
            string[] masterAuth = nodeCredentials switch
            {
                null => [],
                { User: { } user } => ["--masteruser", user, "--masterauth", nodeCredentials.Password],
                _ => ["--masterauth", nodeCredentials.Password],
            };
            string[] sentinelAuth = nodeCredentials switch
            {
                null => [],
                { User: { } user } => [$"sentinel auth-user {ServiceName} {user}", $"sentinel auth-pass {ServiceName} {nodeCredentials.Password}"],
                _ => [$"sentinel auth-pass {ServiceName} {nodeCredentials.Password}"],
            };

            // Diskless full syncs start at once rather than after the default 5 s wait for more replicas.
            topology.Master = topology.Add(RedisServer.Start(nodeCredentials, tls, ["--repl-diskless-sync-delay", "0", .. replication, .. masterAuth]));
            topology.Replica = topology.Add(RedisServer.Start(nodeCredentials, tls, ["--replicaof", "127.0.0.1", topology.Master.Port.ToString(CultureInfo.InvariantCulture), .. replication, .. masterAuth]));
            topology.WaitForReplication();

            var sentinels = new List<RedisServer>();
            for (var i = 0; i < 3; i++)
            {
                sentinels.Add(topology.Add(RedisServer.StartSentinel(
                    topology.Master,
                    ServiceName,
                    quorum: 2,
                    sentinelCredentials,
                    tls,
                    [
                        .. sentinelAuth,
                        $"sentinel down-after-milliseconds {ServiceName} 1000",
                        $"sentinel failover-timeout {ServiceName} 3000",
                        $"sentinel parallel-syncs {ServiceName} 1",
                    ])));
            }

            topology.Sentinels = sentinels;

            // Every Sentinel knows the replica and the two other Sentinels (they meet through the master's hello
            // channel, every 2 s): only then can they agree that the master is down and elect a leader.
            Until(
                () => sentinels.All(s =>
                {
                    var master = Fields(s.Cli("SENTINEL", "MASTER", ServiceName));
                    return master.GetValueOrDefault("num-slaves") == "1" && master.GetValueOrDefault("num-other-sentinels") == "2";
                }),
                "the Sentinels did not find the replica and each other");
            return topology;
        }
        catch
        {
            topology.Dispose();
            throw;
        }
    }

    /// <summary>The node every Sentinel names as the master, once they agree and it says it is one; bounded.</summary>
    public RedisServer WaitForMaster(RedisServer node)
    {
        var port = node.Port.ToString(CultureInfo.InvariantCulture);
        Until(
            () => node.IsRunning
                && node.Cli("ROLE").StartsWith("master", StringComparison.Ordinal)
                && Sentinels.All(s => s.Cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ServiceName).EndsWith("\n" + port, StringComparison.Ordinal)),
            $"the node on port {port} did not become the master every Sentinel names");
        return node;
    }

    /// <summary>Waits until the replica has every write the master acknowledged (bounded).</summary>
    public void WaitForReplication()
    {
        Until(
            () =>
            {
                var master = Fields(Master.Cli("INFO", "replication"), ':');
                var replica = Fields(Replica.Cli("INFO", "replication"), ':');
                return replica.GetValueOrDefault("master_link_status") == "up"
                    && replica.GetValueOrDefault("slave_repl_offset") == master.GetValueOrDefault("master_repl_offset");
            },
            "the replica did not catch up with the master");
    }

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            process.Dispose();
        }
    }

    /// <summary>The fields of a reply: alternate lines (<c>SENTINEL MASTER</c>) or <c>name:value</c> lines (<c>INFO</c>).</summary>
    public static Dictionary<string, string> Fields(string reply, char? separator = null)
    {
        var lines = reply.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        if (separator is { } split)
        {
            foreach (var line in lines)
            {
                var at = line.IndexOf(split, StringComparison.Ordinal);
                if (at > 0)
                {
                    fields[line[..at]] = line[(at + 1)..];
                }
            }
        }
        else
        {
            for (var i = 0; i + 1 < lines.Length; i += 2)
            {
                fields[lines[i]] = lines[i + 1];
            }
        }

        return fields;
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms for at most 30 s.</summary>
    public static void Until(Func<bool> condition, string failure)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > Patience)
            {
                throw new TimeoutException($"Within {Patience.TotalSeconds} s, {failure}.");
            }

            Thread.Sleep(50);
        }
    }

    private RedisServer Add(RedisServer server)
    {
        _processes.Add(server);
        return server;
    }
}
