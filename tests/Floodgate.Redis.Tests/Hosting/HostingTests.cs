using System.Diagnostics;
using Floodgate.Keys;
using Floodgate.Limits;
using Floodgate.Stores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Floodgate.Redis.Tests;

/// <summary>
/// <see cref="Microsoft.Extensions.DependencyInjection.RedisStoreServiceCollectionExtensions.AddFloodgateRedisStore"/> in a real host: the store connects when the
/// host starts, in the background, and a decision never waits for the connection.
/// </summary>
public sealed class HostingTests
{
    /// <summary>The connect timeout the unanswered cases use: a decision that waited for the connection would take this long.</summary>
    private const string ConnectTimeout = "connectTimeout=10000";

    /// <summary>Far below the connect timeout, far above a decision's timeout plus scheduling on the shared 2-core machine.</summary>
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(2);

    private static IHost Build(string configuration, Action<RedisStoreOptions>? configure = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddFloodgateRedisStore(o =>
        {
            o.Configuration = configuration;
            o.KeyPrefix = "h" + Guid.NewGuid().ToString("N")[..10];
            configure?.Invoke(o);
        });
        return builder.Build();
    }

    private static RateLimitCheck Check(string name) =>
        new(Limit.Gcra(new Rate(10, 1, RateUnit.Minute)), StoreKey.Create(name, "alice"), 1, false);

    /// <summary>
    /// Holds every command of <paramref name="server"/>'s clients, the handshake of a new connection included, for 4 s:
    /// past <see cref="Prompt"/>, within the connect timeout. (Redis 7.0 holds <c>CLIENT UNPAUSE</c> too.)
    /// </summary>
    /// <remarks>By redis-cli, which exits at once: disposing a StackExchange.Redis connection would wait out the pause.</remarks>
    private static void Pause(RedisServer server) => Assert.Equal("OK", server.Cli("CLIENT", "PAUSE", "4000", "ALL").Trim());

    /// <summary>The connections redis-server lists under the store's client name.</summary>
    private static int StoreClients(RedisServer server) =>
        server.Cli("CLIENT", "LIST").Split('\n').Count(static line => line.Contains(" name=floodgate ", StringComparison.Ordinal));

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(15))
            {
                return false;
            }

            await Task.Delay(50);
        }

        return true;
    }

    [Fact]
    public async Task The_store_connects_when_the_host_starts_and_decides_in_redis()
    {
        using var server = RedisServer.Start();
        var host = Build(server.Configuration, o => o.Timeout = TimeSpan.FromSeconds(2));
        await host.StartAsync();

        // Connected by the host's start, before anything asked for the store.
        Assert.True(StoreClients(server) > 0, "the store had not connected when the host started");

        var store = Assert.IsType<RedisStore>(host.Services.GetRequiredService<IRateLimitStore>());
        Assert.Same(store, host.Services.GetRequiredService<RedisStore>());
        var check = Check("hosted");
        var outcome = await store.DecideOneAsync(check);
        Assert.False(outcome.IsStoreFailure);
        Assert.True(outcome.Committed);
        Assert.Equal(1, store.RoundTrips);
        Assert.Equal(1, long.Parse(server.Cli("EXISTS", TestStores.KeyOf(store, check)), System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(store.Connection.IsConnected);

        // The host's shutdown disposes the store, which closes its connection.
        await host.StopAsync();
        host.Dispose();
        Assert.True(await EventuallyAsync(() => StoreClients(server) == 0), "the store's connection outlived the host");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_host_whose_redis_does_not_answer_starts_and_decides_by_on_failure_at_once(bool paused)
    {
        // Nothing listening (refused), or a server that accepts the connection and answers nothing (paused).
        using var server = paused ? RedisServer.Start() : null;
        var address = server?.Configuration ?? $"127.0.0.1:{RedisServer.FreePort(cluster: false)}";
        if (server is not null)
        {
            Pause(server);
        }

        var host = Build(address + "," + ConnectTimeout, o =>
        {
            o.Timeout = TimeSpan.FromMilliseconds(50);
            o.FailureMode = StoreFailureMode.Closed;
        });
        try
        {
            var watch = Stopwatch.StartNew();
            await host.StartAsync();
            var started = watch.Elapsed;

            // Two first requests at once: each resolves the store and decides; neither waits for the connection.
            var requests = Enumerable.Range(0, 2).Select(i => Task.Run(async () =>
            {
                var store = host.Services.GetRequiredService<IRateLimitStore>();
                return await store.DecideOneAsync(Check("unanswered" + i));
            })).ToArray();
            var outcomes = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));
            var decided = watch.Elapsed;

            Assert.True(started < Prompt, $"the host took {started.TotalMilliseconds:F0} ms to start");
            Assert.True(decided < Prompt, $"the first decisions took {decided.TotalMilliseconds:F0} ms after the start began");
            Assert.All(outcomes, o =>
            {
                Assert.True(o.IsStoreFailure);
                Assert.False(o.Outcome.IsAllowed);
            });

            var redis = host.Services.GetRequiredService<RedisStore>();
            Assert.True(redis.Failures >= 2);
            if (paused)
            {
                // No connection was made on resolving: the store answered while its connection was still being made (a
                // refused connection may end the attempt early, so only the paused server shows it for certain).
                Assert.Throws<InvalidOperationException>(() => redis.Connection);

                // Once Redis answers, the connection is made and decisions go there.
                Assert.True(await TestStores.DecidedInRedisAsync(redis, Check("answered"), 1), "the store never reached Redis after the pause");
            }

            watch.Restart();
            await host.StopAsync();
            host.Dispose();
            Assert.True(watch.Elapsed < Prompt, $"the host took {watch.Elapsed.TotalMilliseconds:F0} ms to stop");
        }
        finally
        {
            host.Dispose();
        }
    }

    [Fact]
    public async Task A_host_stopped_while_the_store_connects_closes_the_connection_made_after()
    {
        using var server = RedisServer.Start();
        Pause(server);
        var host = Build(server.Configuration + "," + ConnectTimeout, o => o.Timeout = TimeSpan.FromMilliseconds(50));
        try
        {
            await host.StartAsync();
            var store = host.Services.GetRequiredService<RedisStore>();
            Assert.True((await store.DecideOneAsync(Check("stopped"))).IsStoreFailure);

            // Stopped and disposed at once, while the connection is still being made.
            var watch = Stopwatch.StartNew();
            await host.StopAsync();
            host.Dispose();
            Assert.True(watch.Elapsed < Prompt, $"the host took {watch.Elapsed.TotalMilliseconds:F0} ms to stop");

            // The connection finishes once Redis answers, and is closed then: nothing is left connected.
            await store.Connecting.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.True(await EventuallyAsync(() => StoreClients(server) == 0), "the connection made after the host stopped was left open");
        }
        finally
        {
            host.Dispose();
        }
    }

    public static TheoryData<string, Action<RedisStoreOptions>> InvalidOptions() => new()
    {
        { "KeyPrefix", o => o.KeyPrefix = "a b" },
        { "Timeout", o => o.Timeout = TimeSpan.Zero },
        { "Configuration", o => o.Configuration = null },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public async Task An_invalid_option_fails_the_host_s_start_with_its_name(string name, Action<RedisStoreOptions> invalid)
    {
        using var host = Build("127.0.0.1:1", invalid);
        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() => host.StartAsync());
        Assert.Equal(name, error.ParamName);
        Assert.Contains(name, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_invalid_configuration_string_fails_the_host_s_start()
    {
        using var host = Build("127.0.0.1:1,unknownoption=1");
        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() => host.StartAsync());
        Assert.Contains("Redis configuration", error.Message, StringComparison.Ordinal);
    }
}
