using System.Diagnostics;
using System.Globalization;

namespace Floodgate.Redis.Tests;

/// <summary>The Garnet fixture itself: what it starts, that it pauses like redis-server, and that nothing outlives it.</summary>
public sealed class GarnetServerTests
{
    [Fact]
    public void Garnet_starts_with_Lua_and_leaves_neither_process_nor_directory_when_disposed()
    {
        var server = RedisServer.StartGarnet();
        var pid = server.Pid;
        var directory = server.Directory;
        try
        {
            Assert.Equal(ServerKind.Garnet, server.Kind);
            Assert.Contains("garnet_version:2.2.12", server.Cli("INFO", "server"), StringComparison.Ordinal);
            Assert.Equal("2", server.Cli("EVAL", "return redis.call('INCR', KEYS[1]) + 1", "1", "fixture"));
        }
        finally
        {
            server.Dispose();
        }

        Assert.False(server.IsRunning);
        Assert.False(Running(pid), $"Garnet (pid {pid}) outlived its fixture");
        Assert.False(Directory.Exists(directory), $"{directory} was left behind");
    }

    [Fact]
    public void The_Garnet_host_exits_when_its_standard_input_closes()
    {
        // What keeps a Garnet from outliving a test process that dies without disposing its fixture.
        var port = RedisServer.FreePort(cluster: false);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { RedisServer.GarnetHostPath, "--port", port.ToString(CultureInfo.InvariantCulture) }.Concat(RedisServer.GarnetOptions))
        {
            info.ArgumentList.Add(arg);
        }

        using var host = Process.Start(info)!;
        try
        {
            // Garnet's own warnings, if any, come first.
            string? line;
            while ((line = host.StandardOutput.ReadLine()) is not null && line != "Garnet is listening")
            {
            }

            Assert.Equal("Garnet is listening", line);
            host.StandardInput.Close();
            Assert.True(host.WaitForExit(15_000), "the host kept running after its standard input closed");
        }
        finally
        {
            if (!host.HasExited)
            {
                host.Kill();
            }
        }
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public void A_paused_server_answers_only_after_the_pause(ServerKind kind)
    {
        using var server = RedisServer.Start(kind);
        var watch = Stopwatch.StartNew();
        server.Pause(TimeSpan.FromMilliseconds(500));
        Assert.Equal("PONG", server.Cli("PING"));
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(400), $"answered after {watch.ElapsedMilliseconds} ms");
        Assert.True(server.IsRunning);
    }

    private static bool Running(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
