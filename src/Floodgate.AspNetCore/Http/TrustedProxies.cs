using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Primitives;

namespace Floodgate.AspNetCore.Http;

/// <summary>The one forwarding header the trusted proxies write.</summary>
public enum ForwardedHeader
{
    /// <summary><c>X-Forwarded-For</c>, which most proxies append to. The default.</summary>
    XForwardedFor,

    /// <summary>The RFC 7239 <c>Forwarded</c> header.</summary>
    Forwarded,
}

/// <summary>
/// The proxies whose forwarding headers are believed. The client IP is the connection's peer unless the peer is one of
/// them; then the one header the proxies write (<see cref="Header"/>: <c>X-Forwarded-For</c> by default, or
/// <c>Forwarded</c>) is walked from the right, hop by hop, for as long as the hop is trusted. The other header is
/// never read, as a proxy passes it through from the client unchanged; a header sent by anyone else is ignored, so a
/// client cannot pick its own IP.
/// </summary>
public sealed class TrustedProxies
{
    private readonly IPNetwork[] _networks;

    /// <summary>Creates the set from CIDR ranges such as <c>10.0.0.0/8</c> or single addresses, reading <c>X-Forwarded-For</c>.</summary>
    /// <exception cref="FormatException">A range is malformed; the message quotes it.</exception>
    public TrustedProxies(IEnumerable<string> ranges)
        : this(ranges, ForwardedHeader.XForwardedFor)
    {
    }

    /// <summary>Creates the set from CIDR ranges such as <c>10.0.0.0/8</c> or single addresses, reading <paramref name="header"/>.</summary>
    /// <exception cref="FormatException">A range is malformed; the message quotes it.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="header"/> is not a defined value.</exception>
    public TrustedProxies(IEnumerable<string> ranges, ForwardedHeader header)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        if (!Enum.IsDefined(header))
        {
            throw new ArgumentOutOfRangeException(nameof(header), header, "The forwarded header must be XForwardedFor or Forwarded.");
        }

        Header = header;
        var networks = new List<IPNetwork>();
        foreach (var range in ranges)
        {
            networks.Add(ParseRange(range));
        }

        _networks = [.. networks];
    }

    /// <summary>No trusted proxies: the client IP is always the connection's peer.</summary>
    public static TrustedProxies None { get; } = new([]);

    /// <summary>The trusted ranges.</summary>
    public IReadOnlyList<IPNetwork> Networks => _networks;

    /// <summary>The one forwarding header read from trusted proxies.</summary>
    public ForwardedHeader Header { get; }

    /// <summary>The HTTP name of <see cref="Header"/>.</summary>
    public string HeaderName => Header == ForwardedHeader.Forwarded ? "Forwarded" : "X-Forwarded-For";

    /// <summary>
    /// Parses one range: a CIDR such as <c>10.0.0.0/8</c>, or a single address. An IPv4-mapped IPv6 range
    /// (<c>::ffff:10.0.0.0/104</c>, <c>::ffff:10.0.0.5</c>) is the IPv4 range it maps (<c>10.0.0.0/8</c>,
    /// <c>10.0.0.5/32</c>), as peers are compared as IPv4 addresses whichever socket they came through.
    /// </summary>
    /// <exception cref="FormatException">
    /// The range is malformed, or is an IPv4-mapped range shorter than /96 (it would reach past the mapped addresses).
    /// </exception>
    public static IPNetwork ParseRange(string range)
    {
        ArgumentNullException.ThrowIfNull(range);
        var text = range.Trim();
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (IPAddress.TryParse(slash < 0 ? text : text[..slash], out var address) && address.IsIPv4MappedToIPv6)
        {
            return ParseMapped(range, text, slash, address);
        }

        if (IPNetwork.TryParse(text, out var network))
        {
            return network;
        }

        if (slash < 0 && address is not null)
        {
            return new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
        }

        throw new FormatException($"'{range}' is not an IP range: use a CIDR such as 10.0.0.0/8 or fd00::/8, or a single address.");
    }

    /// <summary>An IPv4-mapped range as the IPv4 range it maps: <c>::ffff:a.b.c.d/p</c> is <c>a.b.c.d/(p - 96)</c>.</summary>
    private static IPNetwork ParseMapped(string range, string text, int slash, IPAddress address)
    {
        var prefix = 128;
        if ((slash >= 0 && !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out prefix)) || prefix > 128)
        {
            throw new FormatException($"'{range}' is not an IP range: use a CIDR such as 10.0.0.0/8 or fd00::/8, or a single address.");
        }

        if (prefix < 96)
        {
            throw new FormatException(
                $"'{range}' is an IPv4-mapped IPv6 range shorter than /96, which reaches past the IPv4-mapped addresses; write the IPv4 range instead (such as 10.0.0.0/8 for ::ffff:10.0.0.0/104).");
        }

        // IPNetwork.TryParse clears the host bits, as it does for any range.
        return IPNetwork.Parse(string.Create(CultureInfo.InvariantCulture, $"{address.MapToIPv4()}/{prefix - 96}"));
    }

    /// <summary>Whether <paramref name="address"/> is a trusted proxy.</summary>
    public bool IsTrusted(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (_networks.Length == 0)
        {
            return false;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in _networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Resolves the client IP of a request from its peer address and forwarding headers.</summary>
    /// <param name="peer">The connection's remote address; <see langword="null"/> when unknown.</param>
    /// <param name="forwarded">The RFC 7239 <c>Forwarded</c> header values, read only when <see cref="Header"/> is <see cref="ForwardedHeader.Forwarded"/>.</param>
    /// <param name="forwardedFor">The <c>X-Forwarded-For</c> header values, read only when <see cref="Header"/> is <see cref="ForwardedHeader.XForwardedFor"/>.</param>
    public IPAddress? ResolveClient(IPAddress? peer, StringValues forwarded, StringValues forwardedFor) =>
        ResolveClient(peer, Header == ForwardedHeader.Forwarded ? forwarded : forwardedFor);

    /// <summary>Resolves the client IP of a request from its peer address and the values of <see cref="Header"/>.</summary>
    /// <param name="peer">The connection's remote address; <see langword="null"/> when unknown.</param>
    /// <param name="values">The values of the header named by <see cref="HeaderName"/>.</param>
    public IPAddress? ResolveClient(IPAddress? peer, StringValues values)
    {
        if (peer is null || _networks.Length == 0 || !IsTrusted(peer))
        {
            return peer;
        }

        var useForwarded = Header == ForwardedHeader.Forwarded;
        var current = peer;
        for (var v = values.Count - 1; v >= 0; v--)
        {
            var rest = (values[v] ?? string.Empty).AsSpan();
            while (true)
            {
                var comma = rest.LastIndexOf(',');
                var element = (comma < 0 ? rest : rest[(comma + 1)..]).Trim();
                if (!element.IsEmpty)
                {
                    // The hop that wrote this element is trusted; the element names the hop before it.
                    var hop = useForwarded ? ParseForwardedFor(element) : ParseAddress(element);
                    if (hop is null)
                    {
                        return current;
                    }

                    current = hop;
                    if (!IsTrusted(current))
                    {
                        return current;
                    }
                }

                if (comma < 0)
                {
                    break;
                }

                rest = rest[..comma];
            }
        }

        return current;
    }

    /// <summary>
    /// The addresses the trusted proxies vouch for, client first: the client <see cref="ResolveClient(IPAddress?, StringValues)"/>
    /// finds, then each trusted proxy between it and the peer, as the header names them; the peer itself is not in it.
    /// Empty when the peer is not trusted (then nothing in the header is believed) or the header names no one it can read.
    /// A reverse proxy forwards this chain, with the peer after it, so that what its upstream reads was all vouched for.
    /// </summary>
    /// <param name="peer">The connection's remote address; <see langword="null"/> when unknown.</param>
    /// <param name="values">The values of the header named by <see cref="HeaderName"/>.</param>
    public IReadOnlyList<IPAddress> ResolveChain(IPAddress? peer, StringValues values)
    {
        if (peer is null || _networks.Length == 0 || !IsTrusted(peer))
        {
            return [];
        }

        // Walked as ResolveClient walks it: from the right, for as long as the hop that wrote an element is trusted.
        var chain = new List<IPAddress>();
        var useForwarded = Header == ForwardedHeader.Forwarded;
        for (var v = values.Count - 1; v >= 0; v--)
        {
            var rest = (values[v] ?? string.Empty).AsSpan();
            while (true)
            {
                var comma = rest.LastIndexOf(',');
                var element = (comma < 0 ? rest : rest[(comma + 1)..]).Trim();
                if (!element.IsEmpty)
                {
                    var hop = useForwarded ? ParseForwardedFor(element) : ParseAddress(element);
                    if (hop is null)
                    {
                        chain.Reverse();
                        return chain;
                    }

                    chain.Add(hop);
                    if (!IsTrusted(hop))
                    {
                        chain.Reverse();
                        return chain;
                    }
                }

                if (comma < 0)
                {
                    break;
                }

                rest = rest[..comma];
            }
        }

        chain.Reverse();
        return chain;
    }

    private static IPAddress? ParseForwardedFor(ReadOnlySpan<char> element)
    {
        // An element is ';'-separated pairs: for=192.0.2.60;proto=http;by=203.0.113.43
        while (!element.IsEmpty)
        {
            var semicolon = element.IndexOf(';');
            var pair = (semicolon < 0 ? element : element[..semicolon]).Trim();
            element = semicolon < 0 ? [] : element[(semicolon + 1)..];
            var equals = pair.IndexOf('=');
            if (equals > 0 && pair[..equals].Trim().Equals("for", StringComparison.OrdinalIgnoreCase))
            {
                var value = pair[(equals + 1)..].Trim();
                if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
                {
                    value = value[1..^1];
                }

                return ParseAddress(value);
            }
        }

        return null;
    }

    private static IPAddress? ParseAddress(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty)
        {
            return null;
        }

        if (value[0] == '[')
        {
            // [2001:db8::17]:4711
            var close = value.IndexOf(']');
            return close > 1 && IPAddress.TryParse(value[1..close], out var v6) ? v6 : null;
        }

        if (IPAddress.TryParse(value, out var address))
        {
            return address;
        }

        // 192.0.2.60:4711: an IPv4 address with a port. (A bare IPv6 address parsed above.)
        var colon = value.LastIndexOf(':');
        return colon > 0 && value[..colon].IndexOf(':') < 0 && IPAddress.TryParse(value[..colon], out var v4) ? v4 : null;
    }
}
