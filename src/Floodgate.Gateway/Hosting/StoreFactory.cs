using Floodgate.ApiKeys;
using Floodgate.Bans;
using Floodgate.Events;
using Floodgate.Gateway.Operations;
using Floodgate.Gateway.Policy;
using Floodgate.Overrides;
using Floodgate.Redis;
using Floodgate.Stores;
using Microsoft.Extensions.Logging;

namespace Floodgate.Gateway.Hosting;

/// <summary>Opens the store a policy's <c>store</c> section names, with the options the section read.</summary>
internal static class StoreFactory
{
    /// <summary>The kind a store given by the host (not opened from the policy) is reported as.</summary>
    public const string CustomKind = "custom";

    /// <summary>
    /// Opens the store a policy's <c>store</c> section names, timed unless it decides in process (tens of nanoseconds:
    /// timing it would cost more than it does).
    /// </summary>
    /// <exception cref="PolicyException">The store cannot be opened with these settings.</exception>
    public static OpenedStore Open(GatewayPolicy policy, string source, TimeProvider time, ILoggerFactory loggerFactory)
    {
        IRateLimitStore store;
        string kind;
        IDisposable? owned;
        IOverrideStore overrides;
        IApiKeyStore keys;
        IBanStore bans;
        IThresholdLedger ledger;
        try
        {
            (store, kind, owned, overrides, keys, bans, ledger) = Create(policy, time, loggerFactory);
        }
        catch (Exception e)
        {
            throw new PolicyException([new PolicyError(source, 0, 0, "store", $"The store could not be opened: {e.Message}")]);
        }

        // Distinct rules' sets live beside the bans: in Redis (shared by the replicas) or in process.
        var distinct = owned is OwnedTogether together && together.Parts.OfType<RedisOverrideStore>().FirstOrDefault() is { } shared
            ? new RedisDistinctStore(shared.Connection, policy.RedisStore!.KeyPrefix)
            : (Floodgate.Abuse.IDistinctStore)new Floodgate.Abuse.MemoryDistinctStore();
        return new OpenedStore(Instrument(store, kind), kind, owned, overrides) { ApiKeys = keys, Bans = bans, Thresholds = ledger, Distinct = distinct };
    }

    /// <summary><paramref name="store"/>, timed (<c>floodgate.store.duration</c>) unless it decides in process.</summary>
    public static IRateLimitStore Instrument(IRateLimitStore store, string kind) =>
        store is MemoryStore ? store : new InstrumentedStore(store, kind);

    /// <summary>The store of the options the policy's <c>store</c> section read.</summary>
    /// <exception cref="ArgumentException">The store cannot be opened with these settings (the caller names the file).</exception>
    private static (IRateLimitStore Store, string Kind, IDisposable? Owned, IOverrideStore Overrides, IApiKeyStore ApiKeys, IBanStore Bans, IThresholdLedger Ledger) Create(GatewayPolicy policy, TimeProvider time, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        if (policy.RedisStore is { } redis)
        {
            var store = RedisStore.Connect(redis, time, loggerFactory.CreateLogger<RedisStore>());
            RedisOverrideStore overrides;
            try
            {
                overrides = RedisOverrideStore.Start(store, redis, time, loggerFactory.CreateLogger<RedisOverrideStore>());
            }
            catch
            {
                store.Dispose();
                throw;
            }

            // The overrides, the API keys, the bans and the threshold ledger share the store's connection (the
            // overrides' own under Sentinel), and are disposed before the store: the keys write their last uses on it.
            var keys = new RedisApiKeyStore(overrides.Connection, redis.KeyPrefix, time, loggerFactory.CreateLogger<RedisApiKeyStore>());
            var bans = new RedisBanStore(overrides.Connection, redis.KeyPrefix, time, loggerFactory.CreateLogger<RedisBanStore>());
            var ledger = new RedisThresholdLedger(overrides.Connection, redis.KeyPrefix, time);
            return (store, "redis", new OwnedTogether(keys, bans, overrides, store), overrides, keys, bans, ledger);
        }

        var memory = policy.MemoryStore ?? new MemoryStoreOptions();
        memory.Validate();
        return (new MemoryStore(memory, time), "memory", null, new MemoryOverrideStore(time), new MemoryApiKeyStore(), new MemoryBanStore(time), new MemoryThresholdLedger(time));
    }
}

/// <summary>
/// A store opened from a policy: what decides (timed when remote), its kind, what must be disposed, and where the
/// subjects' overrides, the API keys and the bans live beside it.
/// </summary>
internal readonly record struct OpenedStore(IRateLimitStore Store, string Kind, IDisposable? Owned, IOverrideStore Overrides)
{
    /// <summary>Where the API keys live beside the store: in process, or in its Redis.</summary>
    public IApiKeyStore ApiKeys { get; init; } = new MemoryApiKeyStore();

    /// <summary>Where the bans live beside the store; <see langword="null"/> for a store given by the host (bans are then kept in process).</summary>
    public IBanStore? Bans { get; init; }

    /// <summary>Where distinct rules count beside the store; <see langword="null"/> for a store given by the host (counted in process).</summary>
    public Floodgate.Abuse.IDistinctStore? Distinct { get; init; }

    /// <summary>Where threshold events are deduplicated and kept beside the store; <see langword="null"/> for a store given by the host (kept in process).</summary>
    public IThresholdLedger? Thresholds { get; init; }

    /// <summary>The Redis store among what was opened, if the policy names Redis.</summary>
    public RedisStore? Redis => Owned switch
    {
        RedisStore redis => redis,
        OwnedTogether together => together.Parts.OfType<RedisStore>().FirstOrDefault(),
        _ => null,
    };
}

/// <summary>Several things a store owns, disposed together in order.</summary>
internal sealed class OwnedTogether(params IDisposable[] parts) : IDisposable
{
    /// <summary>The parts, in the order they are disposed.</summary>
    public IReadOnlyList<IDisposable> Parts => parts;

    public void Dispose()
    {
        foreach (var part in parts)
        {
            part.Dispose();
        }
    }
}
