using Floodgate.Keys;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace Floodgate.Redis.Tests;

internal static class TestStores
{
    /// <summary>A store on its own connection with a prefix of its own, so tests sharing a server never meet.</summary>
    public static async Task<RedisStore> ConnectAsync(RedisServer server, Action<RedisStoreOptions>? configure = null, TimeProvider? time = null, string? prefix = null)
    {
        var options = new RedisStoreOptions
        {
            Configuration = server.Configuration,
            KeyPrefix = prefix ?? "t" + Guid.NewGuid().ToString("N")[..10],
            Timeout = TimeSpan.FromSeconds(2),
        };
        configure?.Invoke(options);
        return await RedisStore.ConnectAsync(options, time);
    }

    public static async Task<RedisStore> ConnectAsync(string configuration, Action<RedisStoreOptions>? configure = null, TimeProvider? time = null, string? prefix = null, ILogger<RedisStore>? logger = null)
    {
        var options = new RedisStoreOptions
        {
            Configuration = configuration,
            KeyPrefix = prefix ?? "t" + Guid.NewGuid().ToString("N")[..10],
            Timeout = TimeSpan.FromSeconds(2),
        };
        configure?.Invoke(options);
        return await RedisStore.ConnectAsync(options, time, logger);
    }

    public static long Micros(DateTimeOffset time) => (time.UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    public static FakeTimeProvider Clock(DateTimeOffset start) => new(start);

    public static async Task<StoreOutcome> DecideOneAsync(this IRateLimitStore store, RateLimitCheck check)
    {
        var outcomes = new StoreOutcome[1];
        await store.DecideAsync(new[] { check }, outcomes);
        return outcomes[0];
    }

    public static async Task<StoreOutcome[]> DecideAsync(this IRateLimitStore store, params RateLimitCheck[] checks)
    {
        var outcomes = new StoreOutcome[checks.Length];
        await store.DecideAsync(checks, outcomes);
        return outcomes;
    }

    public static IDatabase Database(this RedisStore store) => store.Connection.GetDatabase();

    /// <summary>
    /// Spends a 3/hour limit of <paramref name="name"/>'s alice through <paramref name="store"/>: three decisions
    /// committed with an exact count, the fourth denied, none failed. Returns the key the state is kept under.
    /// </summary>
    public static async Task<string> SpendThreePerHourAsync(RedisStore store, string name)
    {
        var check = new RateLimitCheck(Limits.Limit.FixedWindow(new Limits.Rate(3, 1, Limits.RateUnit.Hour)), StoreKey.Create(name, "alice"), 1, false);
        for (var i = 0; i < 3; i++)
        {
            var outcome = await store.DecideOneAsync(check);
            Assert.False(outcome.IsStoreFailure, $"decision {i} failed");
            Assert.True(outcome.Committed);
            Assert.Equal(2 - i, outcome.Outcome.Remaining);
        }

        var denied = await store.DecideOneAsync(check);
        Assert.False(denied.IsStoreFailure);
        Assert.False(denied.Outcome.IsAllowed);
        Assert.Equal(0, store.Failures);
        return KeyOf(store, check);
    }

    /// <summary>The SHA1 by which the store calls its script (what <c>SCRIPT EXISTS</c> takes).</summary>
    public static readonly string ScriptSha = Sha(RedisStore.Script);

    /// <summary>The SHA-1 that <c>EVALSHA</c> and <c>SCRIPT EXISTS</c> name a script by.</summary>
    public static string Sha(string script) => Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(script)));

    /// <summary>The Redis key <paramref name="store"/> keeps <paramref name="check"/>'s state under.</summary>
    public static string KeyOf(RedisStore store, RateLimitCheck check) =>
        System.Text.Encoding.ASCII.GetString((byte[])RedisKeys.For(store.Options.KeyPrefix, check.Key, check.Limit.Algorithm)!);

    /// <summary>Decides until <paramref name="successes"/> decisions in a row came from Redis; bounded to 20 s.</summary>
    public static async Task<bool> DecidedInRedisAsync(RedisStore store, RateLimitCheck check, int successes)
    {
        var outcomes = new StoreOutcome[1];
        var row = 0;
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (row < successes && deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            await store.DecideAsync(new[] { check }, outcomes);
            row = outcomes[0].IsStoreFailure ? 0 : row + 1;
            if (row == 0)
            {
                await Task.Delay(50);
            }
        }

        return row >= successes;
    }
}
