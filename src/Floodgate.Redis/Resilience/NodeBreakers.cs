using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using StackExchange.Redis;

namespace Floodgate.Redis;

/// <summary>
/// The circuit breakers a store's calls are judged by: its own (a single node, Sentinel's master, or the cluster slots
/// no master is known for) and, on a cluster, one per master, found by hash slot, so a dead node fails only its own keys.
/// </summary>
internal sealed class NodeBreakers
{
    private const int SlotCount = 16384;

    /// <summary>How often, at most, a slot whose breaker is open asks the connection again which master owns it.</summary>
    private const long RerouteMicroseconds = 100_000;

    /// <summary>On a cluster, a breaker per master, by endpoint.</summary>
    private readonly ConcurrentDictionary<EndPoint, CircuitBreaker> _nodeBreakers = new();
    private readonly Func<EndPoint, CircuitBreaker> _newNodeBreaker;

    /// <summary>On a cluster, each hash slot's master's breaker, filled in as slots are first used.</summary>
    private SlotRoute?[]? _slotRoutes;

    public NodeBreakers(int threshold, long breakMicroseconds)
    {
        Own = new CircuitBreaker(threshold, breakMicroseconds);
        _newNodeBreaker = endPoint => new CircuitBreaker(threshold, breakMicroseconds, NameOf(endPoint));
    }

    /// <summary>The breaker of a single node or of Sentinel's master; on a cluster, of the slots no master is known for.</summary>
    public CircuitBreaker Own { get; }

    /// <summary>Whether calls were routed by hash slot: the connection is to a cluster.</summary>
    public bool RoutesSlots => Volatile.Read(ref _slotRoutes) is not null;

    /// <summary>How many breakers are open: 0 or 1 on a single node or under Sentinel; on a cluster, per master.</summary>
    public int OpenCount
    {
        get
        {
            var open = Own.IsClosed ? 0 : 1;

            // The dictionary itself, not its Values: enumerating it takes no lock and copies nothing.
            foreach (var (_, breaker) in _nodeBreakers)
            {
                open += breaker.IsClosed ? 0 : 1;
            }

            return open;
        }
    }

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
    public CircuitBreaker For(IConnectionMultiplexer connection, int slot, long now)
    {
        if (slot is < 0 or >= SlotCount)
        {
            return Own;
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
        if (route is not null && ((route.Breaker.IsClosed && !ReferenceEquals(route.Breaker, Own)) || now - route.RoutedAt < RerouteMicroseconds))
        {
            return route.Breaker;
        }

        // No master known for the slot (no node connected yet, or none left): the store's own breaker judges it.
        var breaker = OwnerOf(connection, slot) is { } endPoint ? _nodeBreakers.GetOrAdd(endPoint, _newNodeBreaker) : Own;
        Volatile.Write(ref routes[slot], new SlotRoute(breaker, now));
        return breaker;
    }

    /// <summary>The breaker last used for <paramref name="slot"/>, without asking the connection; the store's own if none.</summary>
    public CircuitBreaker LastFor(int slot) =>
        slot is >= 0 and < SlotCount && Volatile.Read(ref _slotRoutes) is { } routes && Volatile.Read(ref routes[slot]) is { } route
            ? route.Breaker
            : Own;

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
