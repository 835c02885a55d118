using Floodgate.Gateway.Hosting;
using Floodgate.Gateway.Policy;
using Floodgate.Redis;
using Microsoft.Extensions.Logging.Abstractions;

namespace Floodgate.Gateway.Tests;

/// <summary>A store opened on Redis holds one connection for the decisions and everything beside them.</summary>
public sealed class SharedConnectionTests
{
    [Fact]
    public async Task The_overrides_api_keys_bans_and_events_share_the_stores_connection_and_close_it_with_the_store()
    {
        using var redis = RedisServer.Start();
        var policy = PolicyLoader.Parse($$"""
            upstream: http://127.0.0.1:1
            store: { kind: redis, configuration: "{{redis.Configuration}}", on_failure: closed, timeout: 2s }
            """, "policy.yaml");
        var opened = StoreFactory.Open(policy, "policy.yaml", TimeProvider.System, NullLoggerFactory.Instance);
        try
        {
            var overrides = (RedisOverrideStore)opened.Overrides;
            await overrides.Ready.WaitAsync(TimeSpan.FromSeconds(10));
            await ((RedisApiKeyStore)opened.ApiKeys).Ready.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Same(opened.Redis!.Connection, overrides.Connection);

            // One multiplexer: its interactive and its subscription connections (the overrides' own made four).
            Assert.Equal(2, Clients(redis));
        }
        finally
        {
            opened.Owned!.Dispose();
        }

        Assert.Equal(0, Clients(redis));
    }

    /// <summary>The server's clients, less the one asking.</summary>
    private static int Clients(RedisServer redis) => redis.Cli("CLIENT", "LIST")
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Count(line => !line.Contains("cmd=client", StringComparison.Ordinal));
}
