using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace Floodgate.Redis;

// Circuit breakers: the store's own, and on a cluster one per master, found by hash slot.
public sealed partial class RedisStore
{
    /// <summary>
    /// The breaker a call to <paramref name="slot"/> is judged by: the master's that owns the slot in the cluster's
    /// configuration as the connection last read it. The slot's route is kept, so a closed breaker costs an array read;
    /// an open one looks again (at most every 100 ms), so a slot that moved (a failover, a resharding) follows its new
    /// master.
    /// </summary>
    /// <remarks>
    /// Not <see cref="IConnectionMultiplexer.GetServer(RedisKey, object?, CommandFlags)"/>: for a slot whose master is
    /// disconnected it names any connected one, which would then count the dead master's failures.
    /// </remarks>
    private CircuitBreaker BreakerOf(IConnectionMultiplexer connection, int slot, long now)
    {
        if (slot is < 0 or >= SlotCount)
        {
            return _breaker;
        }

        var routes = Volatile.Read(ref _slotRoutes);
        if (routes is null)
        {
            routes = new SlotRoute?[SlotCount];
            routes = Interlocked.CompareExchange(ref _slotRoutes, routes, null) ?? routes;
        }

        // A master's closed breaker is kept; an open one, or the store's own (no master was known), is looked up again at
        // most every 100 ms.
        var route = Volatile.Read(ref routes[slot]);
        if (route is not null && ((route.Breaker.IsClosed && !ReferenceEquals(route.Breaker, _breaker)) || now - route.RoutedAt < RerouteMicroseconds))
        {
            return route.Breaker;
        }

        // No master known for the slot (no node connected yet, or none left): the store's own breaker judges it.
        var breaker = OwnerOf(connection, slot) is { } endPoint ? _nodeBreakers.GetOrAdd(endPoint, _newNodeBreaker) : _breaker;
        Volatile.Write(ref routes[slot], new SlotRoute(breaker, now));
        return breaker;
    }

    /// <summary>The endpoint of the master that owns <paramref name="slot"/>, by the first connected node's cluster configuration.</summary>
    private static EndPoint? OwnerOf(IConnectionMultiplexer connection, int slot)
    {
        try
        {
            foreach (var server in connection.GetServers())
            {
                if (server.IsConnected && server.ClusterConfiguration?.GetBySlot(slot)?.EndPoint is { } endPoint)
                {
                    return endPoint;
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or InvalidOperationException or NotSupportedException)
        {
            // Not known: the caller uses the store's own breaker.
        }

        return null;
    }

    /// <summary>The breaker last used for <paramref name="slot"/>, without asking the connection; the store's own if none.</summary>
    private CircuitBreaker BreakerOf(int slot) =>
        slot is >= 0 and < SlotCount && Volatile.Read(ref _slotRoutes) is { } routes && Volatile.Read(ref routes[slot]) is { } route
            ? route.Breaker
            : _breaker;

    private static string NameOf(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => string.Create(CultureInfo.InvariantCulture, $"{dns.Host}:{dns.Port}"),
        _ => endPoint.ToString() ?? "redis",
    };

    /// <summary>A hash slot's master's breaker, and when the connection was last asked which master that is.</summary>
    private sealed class SlotRoute(CircuitBreaker breaker, long routedAt)
    {
        public CircuitBreaker Breaker { get; } = breaker;

        public long RoutedAt { get; } = routedAt;
    }
}
