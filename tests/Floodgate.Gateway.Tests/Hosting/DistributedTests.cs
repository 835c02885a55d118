using System.Diagnostics;
using System.Globalization;
using System.Net;
using Floodgate.Gateway.Demo;

namespace Floodgate.Gateway.Tests;

public sealed class DistributedTests
{
    [Fact]
    public async Task Two_gateway_processes_sharing_one_redis_admit_exactly_the_limit_between_them()
    {
        using var redis = RedisServer.Start();
        await using var upstream = await EchoUpstream.StartAsync(new IPEndPoint(IPAddress.Loopback, 0));
        var directory = Directory.CreateTempSubdirectory("floodgate-distributed-").FullName;
        var policy = Path.Combine(directory, "policy.yaml");
        await File.WriteAllTextAsync(policy, $"""
            upstream: {upstream.Address.ToString().TrimEnd('/')}
            store: {"{"} kind: redis, configuration: "{redis.Configuration}", on_failure: closed, timeout: 2s {"}"}
            edge:
              - name: shared
                key: [client_ip]
                limit: 25/min
            """);
        var gateways = new List<(Process Process, Uri Proxy, Uri Admin)>();
        try
        {
            for (var i = 0; i < 2; i++)
            {
                gateways.Add(StartGateway(policy));
            }

            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            foreach (var (process, _, admin) in gateways)
            {
                await WaitReadyAsync(client, process, admin);
            }

            // 60 requests, 8 at a time, spread over both replicas: exactly 25 pass.
            using var throttle = new SemaphoreSlim(8);
            var statuses = await Task.WhenAll(Enumerable.Range(0, 60).Select(async i =>
            {
                await throttle.WaitAsync();
                try
                {
                    using var response = await client.GetAsync(new Uri(gateways[i % 2].Proxy, $"/item/{i}"));
                    return (int)response.StatusCode;
                }
                finally
                {
                    throttle.Release();
                }
            }));

            Assert.Equal(25, statuses.Count(s => s == 200));
            Assert.Equal(35, statuses.Count(s => s == 429));
            Assert.Equal(25, upstream.Hits);
        }
        finally
        {
            foreach (var (process, _, _) in gateways)
            {
                Stop(process);
            }

            Directory.Delete(directory, recursive: true);
        }
    }

    private static (Process Process, Uri Proxy, Uri Admin) StartGateway(string policy)
    {
        var proxy = new Uri($"http://127.0.0.1:{RedisServer.FreePort(cluster: false).ToString(CultureInfo.InvariantCulture)}");
        var admin = new Uri($"http://127.0.0.1:{RedisServer.FreePort(cluster: false).ToString(CultureInfo.InvariantCulture)}");
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Floodgate.Gateway.dll"), "run", "--policy", policy, "--listen", proxy.ToString(), "--admin", admin.ToString(), "--no-watch", "--log-level", "Warning" })
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("The gateway process did not start.");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, proxy, admin);
    }

    private static async Task WaitReadyAsync(HttpClient client, Process process, Uri admin)
    {
        // Bounded polling for readiness; not a sleep for correctness.
        for (var i = 0; i < 300; i++)
        {
            Assert.False(process.HasExited, $"The gateway exited with {(process.HasExited ? process.ExitCode : 0)}.");
            try
            {
                using var response = await client.GetAsync(new Uri(admin, "/readyz"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        Assert.Fail($"The gateway at {admin} was not ready within 30 seconds.");
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            process.Dispose();
        }
    }
}
