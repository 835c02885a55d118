namespace Floodgate.Redis.Tests;

/// <summary><see cref="RedisStore.IsConnected"/> and <see cref="RedisStore.WaitConnectedAsync"/> against a real redis-server started late.</summary>
public sealed class ConnectedTests
{
    [Fact]
    public async Task WaitConnectedAsync_completes_once_a_late_redis_is_up_and_at_once_when_it_is()
    {
        var port = RedisServer.FreePort(cluster: false);
        using var store = RedisStore.Connect(new RedisStoreOptions { Configuration = $"127.0.0.1:{port},connectTimeout=500", KeyPrefix = "connected" });
        Assert.False(store.IsConnected);

        var waiting = store.WaitConnectedAsync(CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        using var redis = RedisServer.Start(port);
        await waiting.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(store.IsConnected);
        Assert.True(store.WaitConnectedAsync(CancellationToken.None).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task WaitConnectedAsync_stops_at_its_token_or_when_the_store_is_disposed()
    {
        var port = RedisServer.FreePort(cluster: false);
        var store = RedisStore.Connect(new RedisStoreOptions { Configuration = $"127.0.0.1:{port},connectTimeout=200", KeyPrefix = "connected" });
        using (var deadline = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.WaitConnectedAsync(deadline.Token));
        }

        var waiting = store.WaitConnectedAsync(CancellationToken.None);
        store.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }
}
