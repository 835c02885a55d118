namespace Floodgate.Redis.Tests;

/// <summary>The fixture itself: a failed start leaves neither a process nor its directory behind.</summary>
public sealed class RedisServerTests
{
    [Fact]
    public void A_server_that_exits_during_start_up_leaves_no_directory_behind()
    {
        var directory = Path.Combine(Path.GetTempPath(), "floodgate-redis-fail-" + Guid.NewGuid().ToString("N")[..12]);
        var error = Assert.Throws<InvalidOperationException>(() => RedisServer.StartIn(directory, RedisServer.FreePort(cluster: false), ["--no-such-directive", "x"]));
        Assert.Contains("exited with", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(directory), $"{directory} was left behind");
    }
}
