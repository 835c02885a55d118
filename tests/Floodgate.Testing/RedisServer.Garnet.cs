using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace Floodgate.Testing;

/// <summary>The server a <see cref="RedisServer"/> runs.</summary>
public enum ServerKind
{
    /// <summary>redis-server (Debian's).</summary>
    Redis,

    /// <summary>
    /// Microsoft Garnet (the NuGet package <c>Microsoft.Garnet</c>), in a process of its own:
    /// <c>tests/Floodgate.GarnetHost</c>, started with Lua on and scripts run as transactions.
    /// </summary>
    Garnet,
}

public sealed partial class RedisServer
{
    /// <summary>
    /// Garnet's options besides the port: loopback only, Lua on, and every script run as a transaction (its keys
    /// locked while it runs: without <c>--lua-transaction-mode</c> another client's command can interleave with a
    /// script's); <c>INFO commandstats</c> counted, as redis-server counts it; a small hash index to start with (it
    /// grows), no banner, warnings only.
    /// </summary>
    public static readonly IReadOnlyList<string> GarnetOptions =
        ["--bind", "127.0.0.1", "--lua", "--lua-transaction-mode", "--commandstats-monitor", "--index", "1m", "-q", "--logger-level", "Warning"];

    /// <summary>How long a server may take to accept connections: Garnet is a .NET program that starts more slowly.</summary>
    private TimeSpan StartTimeout => TimeSpan.FromSeconds(Kind == ServerKind.Garnet ? 30 : 15);

    /// <summary>Starts a plain server of <paramref name="kind"/> on a free loopback port.</summary>
    public static RedisServer Start(ServerKind kind) => kind == ServerKind.Garnet ? StartGarnet() : Start();

    /// <summary>
    /// Starts Garnet on a free loopback port (on <paramref name="port"/> when given), in a process of its own (the
    /// built <c>tests/Floodgate.GarnetHost</c>), with <see cref="GarnetOptions"/> and <paramref name="extra"/> options.
    /// redis-cli (<see cref="Cli"/>) talks to it as to redis-server.
    /// </summary>
    public static RedisServer StartGarnet(int? port = null, params string[] extra) =>
        Launch(new RedisServer(port ?? FreePort(cluster: false), NewDirectory(), extra, kind: ServerKind.Garnet));

    /// <summary>
    /// The built Garnet host: <c>FLOODGATE_GARNET_HOST</c> when set, else the path this assembly was built with (the
    /// host of the same configuration, which Floodgate.Testing's build builds first).
    /// </summary>
    public static string GarnetHostPath =>
        Environment.GetEnvironmentVariable("FLOODGATE_GARNET_HOST") is { Length: > 0 } path
            ? path
            : typeof(RedisServer).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "GarnetHost").Value!;

    /// <summary>
    /// Makes the server stop answering for <paramref name="duration"/>: commands sent meanwhile wait, and are answered
    /// after it. redis-server: <c>CLIENT PAUSE</c> (ALL). Garnet, which has no <c>CLIENT PAUSE</c>: the process is
    /// stopped (SIGSTOP) and continued (SIGCONT) after <paramref name="duration"/>, in the background; its connections
    /// stay open and what they sent waits in the sockets.
    /// </summary>
    public void Pause(TimeSpan duration)
    {
        if (Kind == ServerKind.Redis)
        {
            var reply = Cli("CLIENT", "PAUSE", ((long)duration.TotalMilliseconds).ToString(CultureInfo.InvariantCulture), "ALL");
            if (reply != "OK")
            {
                throw new InvalidOperationException($"CLIENT PAUSE answered {reply}.");
            }

            return;
        }

        var process = _process ?? throw new InvalidOperationException("The server is not running.");
        var pid = process.Id;
        Signal(pid, "STOP");
        _ = Task.Run(async () =>
        {
            await Task.Delay(duration).ConfigureAwait(false);

            // Only the process stopped, and only while this fixture still runs it: a killed one needs no CONT.
            try
            {
                if (ReferenceEquals(_process, process) && IsRunning)
                {
                    Signal(pid, "CONT");
                }
            }
            catch (InvalidOperationException)
            {
                // Killed meanwhile.
            }
        });
    }

    /// <summary>Sends <paramref name="signal"/> (STOP, CONT) to the process <paramref name="pid"/>, which this fixture started.</summary>
    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(CultureInfo.InvariantCulture)])
            ?? throw new InvalidOperationException("kill did not start.");
        if (!kill.WaitForExit(10_000) || kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {pid} failed.");
        }
    }

    /// <summary>
    /// Runs each command the store's scripts call once, in a script, on a key of its own (then deleted): Garnet, a .NET
    /// program, compiles each command's code when it first runs it. On a fresh server the first sorted-set script took
    /// 1.4 s on the shared 2-core test machine, longer than the timeouts of tests that expect an answer (a production
    /// server is warm; docs/redis.md, Servers). redis-server needs none.
    /// </summary>
    private void WarmUp()
    {
        if (Kind != ServerKind.Garnet)
        {
            return;
        }

        const string Script = """
            local now = redis.call('TIME')
            redis.call('MGET', KEYS[1], KEYS[2])
            redis.call('SET', KEYS[1], now[1], 'PX', '60000')
            redis.call('ZADD', KEYS[2], now[1], 'lease:1')
            redis.call('ZINCRBY', KEYS[2], '-1', '#')
            redis.call('ZRANGE', KEYS[2], '0', '1', 'WITHSCORES')
            redis.call('ZRANGEBYSCORE', KEYS[2], '(0', now[1])
            redis.call('ZREMRANGEBYSCORE', KEYS[2], '(0', '1')
            redis.call('ZSCORE', KEYS[2], '#')
            redis.call('ZREM', KEYS[2], 'lease:1')
            redis.call('PEXPIRE', KEYS[2], '60000')
            return redis.call('DEL', KEYS[1], KEYS[2])
            """;
        var reply = Cli("EVAL", Script, "2", "floodgate-warm-up:s", "floodgate-warm-up:z");
        if (reply != "2")
        {
            throw new InvalidOperationException($"Garnet's warm-up script answered {reply}.");
        }
    }

    private ProcessStartInfo GarnetStartInfo()
    {
        var host = GarnetHostPath;
        if (!File.Exists(host))
        {
            throw new FileNotFoundException($"The Garnet host {host} is not built: build tests/Floodgate.GarnetHost (it is in Floodgate.slnx).", host);
        }

        // The host exits when its standard input closes: a test process that dies leaves no Garnet behind.
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory,
        };
        info.ArgumentList.Add(host);
        info.ArgumentList.Add("--port");
        info.ArgumentList.Add(Port.ToString(CultureInfo.InvariantCulture));
        foreach (var arg in GarnetOptions.Concat(_extra))
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }
}

/// <summary>One Garnet shared by the tests of a collection, as <see cref="RedisFixture"/> shares one redis-server.</summary>
public sealed class GarnetFixture : IServerFixture, IDisposable
{
    public GarnetFixture() => Server = RedisServer.StartGarnet();

    public RedisServer Server { get; }

    public void Dispose() => Server.Dispose();
}

/// <summary>A server shared by the tests of a collection: <see cref="RedisFixture"/> or <see cref="GarnetFixture"/>.</summary>
public interface IServerFixture
{
    RedisServer Server { get; }
}
