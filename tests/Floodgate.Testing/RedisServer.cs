using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Floodgate.Testing;

/// <summary>
/// A real redis-server process on a free loopback port, killed by its PID when disposed: a plain server, a TLS-only
/// server (<see cref="StartTls"/>) or a Sentinel (<see cref="StartSentinel"/>); or another Redis-compatible server
/// (<see cref="Kind"/>: Garnet, <see cref="StartGarnet"/>).
/// </summary>
public sealed partial class RedisServer : IDisposable
{
    private readonly string[] _leading;
    private readonly string[] _extra;
    private readonly string[] _cliOptions;
    private Process? _process;

    static RedisServer()
    {
        // The fixtures block threads while processes start (redis-cli, cluster creation). On a 2-core machine the
        // thread pool would then add threads slowly, and the timers that bound each decision would fire late.
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), Math.Max(io, 32));
    }

    private RedisServer(int port, string directory, string[] extra, string[]? leading = null, string[]? cliOptions = null, ServerKind kind = ServerKind.Redis)
    {
        Kind = kind;
        Port = port;
        Directory = directory;
        _extra = extra;
        _leading = leading ?? [];
        _cliOptions = cliOptions ?? [];
    }

    /// <summary>Which server this is: redis-server, or Garnet.</summary>
    public ServerKind Kind { get; }

    public int Port { get; }

    public string Directory { get; }

    public string Configuration => $"127.0.0.1:{Port}";

    public bool IsRunning => _process is { HasExited: false };

    public int Pid => _process?.Id ?? 0;

    /// <summary>Starts a server; <paramref name="extra"/> are more command-line options.</summary>
    public static RedisServer Start(params string[] extra) => Start(FreePort(cluster: false), extra);

    public static RedisServer Start(int port, params string[] extra) => StartIn(NewDirectory(), port, extra);

    /// <summary>Starts a server in <paramref name="directory"/>, created here and deleted with the server.</summary>
    public static RedisServer StartIn(string directory, int port, string[] extra) => Launch(new RedisServer(port, directory, extra));

    /// <summary>
    /// Starts a server that speaks TLS only (<c>--port 0</c>) with the given PEM files. With
    /// <paramref name="clientCertificate"/> the server requires clients to present a certificate signed by
    /// <paramref name="authority"/> (mutual TLS); redis-cli then presents that one. <paramref name="extra"/> are more options.
    /// </summary>
    public static RedisServer StartTls(string certificate, string key, string authority, (string Certificate, string Key)? clientCertificate = null, params string[] extra) =>
        Start(null, new RedisTlsFiles(certificate, key, authority, clientCertificate), extra);

    /// <summary>
    /// Starts a server that requires <paramref name="credentials"/> (<c>requirepass</c>, or an ACL user with the
    /// default user off); redis-cli authenticates with them. <paramref name="extra"/> are more command-line options.
    /// </summary>
    public static RedisServer Start(RedisCredentials credentials, params string[] extra)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        return Start(credentials, null, extra);
    }

    /// <summary>
    /// Starts a server that requires <paramref name="credentials"/> when given (as above) and speaks only TLS with
    /// <paramref name="tls"/>' files when given; redis-cli does both. <paramref name="extra"/> are more command-line options.
    /// </summary>
    public static RedisServer Start(RedisCredentials? credentials, RedisTlsFiles? tls, params string[] extra)
    {
        var port = FreePort(cluster: false);
        string[] auth = credentials switch
        {
            null => [],
            { User: { } user } => ["--user", user, "on", ">" + credentials.Password, "~*", "&*", "+@all", "--user", "default", "off"],
            _ => ["--requirepass", credentials.Password],
        };
        return Launch(new RedisServer(port, NewDirectory(), [.. tls?.ServerArguments(port) ?? [], .. auth, .. extra], cliOptions: [.. tls?.CliOptions ?? [], .. credentials?.CliOptions ?? []]));
    }

    /// <summary>
    /// Starts a Sentinel (<c>redis-server sentinel.conf --sentinel</c>) that monitors <paramref name="master"/> as
    /// <paramref name="serviceName"/>. Its configuration file, which Sentinel rewrites as it learns, lives in the
    /// server's own directory; <paramref name="directives"/> are more lines of it, such as
    /// <c>sentinel down-after-milliseconds mymaster 1000</c>.
    /// </summary>
    public static RedisServer StartSentinel(RedisServer master, string serviceName, int quorum, params string[] directives) =>
        StartSentinel(master, serviceName, quorum, credentials: null, directives);

    /// <summary>
    /// Starts a Sentinel as above that requires <paramref name="credentials"/> of its clients, when given, and presents
    /// them to the other Sentinels (<c>requirepass</c>, which Sentinels also use with each other; or an ACL user with
    /// the default user off, and <c>sentinel sentinel-user</c>/<c>sentinel-pass</c>); redis-cli authenticates with them.
    /// </summary>
    public static RedisServer StartSentinel(RedisServer master, string serviceName, int quorum, RedisCredentials? credentials, params string[] directives) =>
        StartSentinel(master, serviceName, quorum, credentials, tls: null, directives);

    /// <summary>
    /// Starts a Sentinel as above that, with <paramref name="tls"/>, speaks only TLS to its clients and, by
    /// <c>tls-replication yes</c>, to the master, its replicas and the other Sentinels too (which must speak TLS then).
    /// </summary>
    public static RedisServer StartSentinel(RedisServer master, string serviceName, int quorum, RedisCredentials? credentials, RedisTlsFiles? tls, params string[] directives)
    {
        ArgumentNullException.ThrowIfNull(master);
        var port = FreePort(cluster: false);
        var directory = NewDirectory();
        var file = Path.Combine(directory, "sentinel.conf");
        string[] monitor = [$"sentinel monitor {serviceName} 127.0.0.1 {master.Port.ToString(CultureInfo.InvariantCulture)} {quorum.ToString(CultureInfo.InvariantCulture)}"];
        string[] auth = credentials switch
        {
            null => [],
            { User: { } user } => ["user default off", $"user {user} on >{credentials.Password} allchannels +@all", $"sentinel sentinel-user {user}", $"sentinel sentinel-pass {credentials.Password}"],
            _ => [$"requirepass {credentials.Password}"],
        };
        string[] listen = tls is null ? [] : [.. tls.ServerArguments(port), "--tls-replication", "yes"];
        return Launch(
            new RedisServer(port, directory, listen, leading: [file, "--sentinel"], cliOptions: [.. tls?.CliOptions ?? [], .. credentials?.CliOptions ?? []]),
            () => File.WriteAllLines(file, [.. monitor, .. auth, .. directives]));
    }

    private static string NewDirectory() => Path.Combine(Path.GetTempPath(), "floodgate-redis-" + Guid.NewGuid().ToString("N")[..12]);

    /// <summary>Creates the server's directory, runs <paramref name="prepare"/> (which writes files into it), and starts the server.</summary>
    private static RedisServer Launch(RedisServer server, Action? prepare = null)
    {
        try
        {
            System.IO.Directory.CreateDirectory(server.Directory);
            prepare?.Invoke();
            server.Run();
        }
        catch
        {
            // Neither the process nor its directory outlives a failed start.
            server.Dispose();
            throw;
        }

        return server;
    }

    /// <summary>A free loopback port; for a cluster node, the bus port (port + 10000) is free too.</summary>
    public static int FreePort(bool cluster)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var port = Reserve(0);
            if (port is > 1024 and < 55000 && (!cluster || Reserve(port + 10000) > 0))
            {
                return port;
            }
        }

        throw new InvalidOperationException("No free loopback port was found.");
    }

    /// <summary>Starts the server again on the same port after <see cref="Kill"/>.</summary>
    public void Restart()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("The server is running.");
        }

        Run();
    }

    /// <summary>Kills the server process (SIGKILL) and waits for it to exit; safe to call again.</summary>
    public void Kill()
    {
        var process = _process;
        _process = null;
        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
        finally
        {
            process.Dispose();
        }
    }

    /// <summary>Runs redis-cli against this server (over TLS when the server speaks only TLS) and returns its output.</summary>
    public string Cli(params string[] args) => RunCli(_cliOptions, args);

    /// <summary>Runs redis-cli against this server in clear text, whatever it speaks, and returns its output.</summary>
    public string PlainCli(params string[] args) => RunCli([], args);

    private string RunCli(IEnumerable<string> options, string[] args)
    {
        var info = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-h");
        info.ArgumentList.Add("127.0.0.1");
        info.ArgumentList.Add("-p");
        info.ArgumentList.Add(Port.ToString(CultureInfo.InvariantCulture));
        foreach (var option in options)
        {
            info.ArgumentList.Add(option);
        }

        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var cli = Process.Start(info)!;
        var output = cli.StandardOutput.ReadToEndAsync();
        var error = cli.StandardError.ReadToEndAsync();
        if (!cli.WaitForExit(30_000))
        {
            cli.Kill();
            throw new TimeoutException($"redis-cli {string.Join(' ', args)} did not finish.");
        }

        return (output.Result + error.Result).Trim();
    }

    public void Dispose()
    {
        Kill();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static int Reserve(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            var bound = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return bound;
        }
        catch (SocketException)
        {
            return -1;
        }
    }

    private void Run()
    {
        var info = Kind == ServerKind.Garnet ? GarnetStartInfo() : RedisStartInfo();
        _process = Process.Start(info) ?? throw new InvalidOperationException($"{Kind} did not start.");
        try
        {
            _process.OutputDataReceived += static (_, _) => { };
            _process.ErrorDataReceived += static (_, _) => { };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();

            // Bounded polling for the process to accept connections; not a sleep for correctness.
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < StartTimeout)
            {
                if (_process.HasExited)
                {
                    throw new InvalidOperationException($"{Kind} on port {Port} exited with {_process.ExitCode}.");
                }

                try
                {
                    using var client = new TcpClient();
                    client.Connect(IPAddress.Loopback, Port);
                    if (Cli("PING") == "PONG")
                    {
                        WarmUp();
                        return;
                    }
                }
                catch (SocketException)
                {
                }

                Thread.Sleep(20);
            }
        }
        catch
        {
            // A failed start-up (an exit, a redis-cli timeout, anything) kills what it launched.
            Kill();
            throw;
        }

        Kill();
        throw new TimeoutException($"{Kind} on port {Port} did not start within {StartTimeout.TotalSeconds} s.");
    }

    private ProcessStartInfo RedisStartInfo()
    {
        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Directory };
        foreach (var arg in _leading)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var arg in new[] { "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no", "--dir", Directory, "--daemonize", "no", "--loglevel", "warning" })
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var arg in _extra)
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }
}

/// <summary>A password a server requires, with an ACL user when <see cref="User"/> is given (else the default user).</summary>
public sealed record RedisCredentials(string? User, string Password)
{
    /// <summary>redis-cli's options to authenticate with these credentials.</summary>
    public string[] CliOptions => User is { } user
        ? ["--user", user, "--pass", Password, "--no-auth-warning"]
        : ["--pass", Password, "--no-auth-warning"];
}

/// <summary>
/// The PEM files of a server that speaks only TLS: its certificate and key, and the CA whose certificates it trusts.
/// With <see cref="Client"/> (mutual TLS) it requires clients to present a certificate of that CA, and presents
/// <see cref="Client"/> itself where it is the client (replication, Sentinel); redis-cli presents it too.
/// </summary>
public sealed record RedisTlsFiles(string Certificate, string Key, string Authority, (string Certificate, string Key)? Client = null)
{
    /// <summary>The files of <paramref name="certificates"/>, with its client certificate when <paramref name="mutual"/>.</summary>
    public static RedisTlsFiles Of(TestCertificates certificates, bool mutual)
    {
        ArgumentNullException.ThrowIfNull(certificates);
        return new(certificates.ServerCertificate, certificates.ServerKey, certificates.Authority, mutual ? (certificates.ClientCertificate, certificates.ClientKey) : null);
    }

    /// <summary>redis-cli's options to connect with these files.</summary>
    public string[] CliOptions => Client is { } client
        ? ["--tls", "--cacert", Authority, "--cert", client.Certificate, "--key", client.Key]
        : ["--tls", "--cacert", Authority];

    /// <summary>redis-server's options to listen on TLS <paramref name="port"/> only.</summary>
    public string[] ServerArguments(int port)
    {
        string[] listen =
        [
            "--port", "0", "--tls-port", port.ToString(CultureInfo.InvariantCulture),
            "--tls-cert-file", Certificate, "--tls-key-file", Key, "--tls-ca-cert-file", Authority,
            "--tls-auth-clients", Client is null ? "no" : "yes",
        ];

        // The server certificate is for server authentication only: as a client, the server presents the client one.
        return Client is { } client ? [.. listen, "--tls-client-cert-file", client.Certificate, "--tls-client-key-file", client.Key] : listen;
    }
}

/// <summary>
/// One redis-server shared by the tests of a collection; each test uses its own key prefix. Each test project that
/// shares it declares its own collection (<c>RedisCollection</c>): xunit finds collection definitions only in the
/// test assembly.
/// </summary>
public sealed class RedisFixture : IServerFixture, IDisposable
{
    public RedisFixture() => Server = RedisServer.Start();

    public RedisServer Server { get; }

    public void Dispose() => Server.Dispose();
}
