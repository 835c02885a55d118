using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace Floodgate.Gateway.Tests;

/// <summary>
/// The gateway as its own process (<c>Floodgate.Gateway.dll run</c>, the build the tests reference) on free loopback
/// ports, with its own meters, signal handling and exit code; killed on dispose if it is still running.
/// </summary>
internal sealed class GatewayProcess : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly ChildProcess _child;

    private GatewayProcess(ChildProcess child, Uri proxy, Uri admin)
    {
        _child = child;
        Proxy = proxy;
        Admin = admin;
    }

    public Uri Proxy { get; }

    public Uri Admin { get; }

    /// <summary>The policy file it runs (watched unless <c>--no-watch</c> was given).</summary>
    public string PolicyPath => Path.Combine(_child.Directory, "policy.yaml");

    public bool HasExited => _child.Process.HasExited;

    public string Output => _child.Output;

    /// <summary>Starts <c>run --policy</c> on <paramref name="policy"/> with the other <paramref name="options"/> given.</summary>
    public static GatewayProcess Start(string policy, params string[] options)
    {
        var directory = Directory.CreateTempSubdirectory("floodgate-shutdown-test-").FullName;
        var policyPath = Path.Combine(directory, "policy.yaml");
        File.WriteAllText(policyPath, policy);
        var proxy = new Uri($"http://127.0.0.1:{RedisServer.FreePort(cluster: false)}");
        var admin = new Uri($"http://127.0.0.1:{RedisServer.FreePort(cluster: false)}");
        var info = new ProcessStartInfo("dotnet");
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Floodgate.Gateway.dll"), "run", "--policy", policyPath, "--listen", proxy.ToString(), "--admin", admin.ToString() }.Concat(options))
        {
            info.ArgumentList.Add(arg);
        }

        return new GatewayProcess(ChildProcess.Start(info, directory, "The gateway"), proxy, admin);
    }

    public async Task WaitReadyAsync()
    {
        using var admin = new HttpClient { BaseAddress = Admin, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(HasExited, $"The gateway exited: {Output}");
            Assert.True(deadline.Elapsed < Bound, $"The gateway was not ready in time: {Output}");
            try
            {
                using var ready = await admin.GetAsync(new Uri("/readyz", UriKind.Relative));
                if (ready.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Sends SIGTERM, as a container runtime or Kubernetes does.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _child.Process.Id.ToString(CultureInfo.InvariantCulture)])
            ?? throw new InvalidOperationException("kill did not start.");
        Assert.True(kill.WaitForExit(10_000) && kill.ExitCode == 0, "kill -TERM failed");
    }

    public async Task<int> WaitExitAsync()
    {
        using var timeout = new CancellationTokenSource(Bound);
        await _child.Process.WaitForExitAsync(timeout.Token);
        return _child.Process.ExitCode;
    }

    public void Dispose() => _child.Dispose();
}
