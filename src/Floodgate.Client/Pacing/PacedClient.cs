using System.Collections.Concurrent;

namespace Floodgate.Client.Pacing;

/// <summary>
/// The pacers of one named client: one route per server and credentials (scheme, host, port and the
/// <c>Authorization</c> value), each paced by the pacer of the partition its last answer named. Routes that name the
/// same partition share its pacer.
/// </summary>
internal sealed class PacedClient
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Pacer> _partitions = new(StringComparer.Ordinal);
    private Route[] _routes = [];

    public PacedClient(string name, TimeProvider time)
    {
        Name = name;
        Time = time;
    }

    /// <summary>The client's name (the <c>IHttpClientFactory</c> name).</summary>
    public string Name { get; }

    public TimeProvider Time { get; }

    /// <summary>The route of a request; allocates only the first time a server and credentials are seen.</summary>
    public Route RouteFor(Uri? uri, string? authorization)
    {
        var scheme = uri?.Scheme ?? string.Empty;
        var host = uri?.Host ?? string.Empty;
        var port = uri?.Port ?? 0;
        foreach (var route in Volatile.Read(ref _routes))
        {
            if (route.Port == port && string.Equals(route.Host, host, StringComparison.OrdinalIgnoreCase)
                && string.Equals(route.Scheme, scheme, StringComparison.Ordinal) && string.Equals(route.Authorization, authorization, StringComparison.Ordinal))
            {
                return route;
            }
        }

        lock (_lock)
        {
            foreach (var route in _routes)
            {
                if (route.Port == port && string.Equals(route.Host, host, StringComparison.OrdinalIgnoreCase)
                    && string.Equals(route.Scheme, scheme, StringComparison.Ordinal) && string.Equals(route.Authorization, authorization, StringComparison.Ordinal))
                {
                    return route;
                }
            }

            var added = new Route(this, scheme, host, port, authorization);
            Volatile.Write(ref _routes, [.. _routes, added]);
            return added;
        }
    }

    /// <summary>The pacer of a partition of <paramref name="route"/>'s server, made when first named.</summary>
    internal Pacer PacerFor(Route route, ReadOnlySpan<char> partition)
    {
        lock (_lock)
        {
            // Partitions are per server: two servers may use one policy name for different budgets.
            var key = $"{route.Scheme}://{route.Host}:{route.Port} {partition}";
            if (!_partitions.TryGetValue(key, out var pacer))
            {
                pacer = new Pacer(partition.ToString(), Time);
                _partitions.Add(key, pacer);
            }

            return pacer;
        }
    }
}

/// <summary>One server and credentials of a client, and the pacer its requests go through now.</summary>
internal sealed class Route
{
    private readonly PacedClient _client;
    private Pacer _current;

    public Route(PacedClient client, string scheme, string host, int port, string? authorization)
    {
        _client = client;
        Scheme = scheme;
        Host = host;
        Port = port;
        Authorization = authorization;
        _current = new Pacer(string.Empty, client.Time);
    }

    public string Scheme { get; }

    public string Host { get; }

    public int Port { get; }

    public string? Authorization { get; }

    /// <summary>The pacer of the partition the route's last answer named.</summary>
    public Pacer Current => Volatile.Read(ref _current);

    /// <summary>
    /// The pacer for an answer that names <paramref name="partition"/>: the current one when it is that partition (no
    /// allocation), else the partition's (shared with the client's other routes to it), which becomes current.
    /// </summary>
    public Pacer Follow(ReadOnlySpan<char> partition)
    {
        var current = Current;
        if (partition.IsEmpty || partition.SequenceEqual(current.Partition))
        {
            return current;
        }

        var pacer = _client.PacerFor(this, partition);
        Volatile.Write(ref _current, pacer);
        if (current.Partition.Length == 0)
        {
            // The route's own pacer, used until an answer named the partition: its queue moves to the partition's.
            current.Retire();
        }

        return pacer;
    }
}

/// <summary>Every paced client of a service provider, by name.</summary>
internal sealed class PacerRegistry(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, PacedClient> _clients = new(StringComparer.Ordinal);

    public PacedClient ClientFor(string name) => _clients.GetOrAdd(name, static (n, t) => new PacedClient(n, t), time);
}
