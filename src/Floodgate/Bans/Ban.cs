using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Floodgate.Bans;

/// <summary>What a ban names: one IP address, a network, or a subject.</summary>
public enum BanKind
{
    /// <summary>One client IP address (an IPv4-mapped IPv6 address is the IPv4 address).</summary>
    Ip,

    /// <summary>A network in CIDR notation, such as <c>203.0.113.0/24</c>.</summary>
    Network,

    /// <summary>A subject: a token's or API key's identity.</summary>
    Subject,
}

/// <summary>
/// A ban in force until <see cref="ExpiresAt"/>: set through the admin API (<see cref="Source"/> <c>admin</c>), or started
/// by an edge rule's <c>ban</c> when a client IP went over it (<see cref="Source"/> the rule's name).
/// </summary>
/// <param name="Kind">What <paramref name="Target"/> names.</param>
/// <param name="Target">The IP address, network or subject, in its canonical form (<see cref="TryCanonical"/>).</param>
/// <param name="Source"><see cref="AdminSource"/>, or the name of the edge rule whose ban it is.</param>
/// <param name="CreatedAt">When it was set.</param>
/// <param name="ExpiresAt">When it lapses.</param>
public sealed record Ban(BanKind Kind, string Target, string Source, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt)
{
    /// <summary>The source of a ban set through the admin API.</summary>
    public const string AdminSource = "admin";

    /// <summary>The longest subject a ban may name (as an override's).</summary>
    public const int MaxSubjectLength = Overrides.RateLimitOverride.MaxSubjectLength;

    /// <summary>What identifies the ban among all: its kind and target, such as <c>ip:203.0.113.7</c>.</summary>
    public string Id => KindName(Kind) + ":" + Target;

    /// <summary>Whether the ban has lapsed at <paramref name="now"/>.</summary>
    public bool IsExpired(DateTimeOffset now) => now >= ExpiresAt;

    /// <summary>The kind's name in the admin API and in stored values: <c>ip</c>, <c>cidr</c> or <c>subject</c>.</summary>
    public static string KindName(BanKind kind) => kind switch
    {
        BanKind.Ip => "ip",
        BanKind.Network => "cidr",
        _ => "subject",
    };

    /// <summary>The kind named <paramref name="name"/> (<see cref="KindName"/>); <see langword="false"/> for another name.</summary>
    public static bool TryParseKind(string? name, out BanKind kind)
    {
        switch (name)
        {
            case "ip":
                kind = BanKind.Ip;
                return true;
            case "cidr":
                kind = BanKind.Network;
                return true;
            case "subject":
                kind = BanKind.Subject;
                return true;
            default:
                kind = default;
                return false;
        }
    }

    /// <summary>
    /// The canonical target of a ban of <paramref name="kind"/> on <paramref name="text"/>: an IP address as
    /// <see cref="IPAddress.ToString"/> writes it (IPv4-mapped as IPv4), a network with its host bits clear and its
    /// prefix length, a subject as given (1 to <see cref="MaxSubjectLength"/> characters).
    /// </summary>
    /// <returns><see langword="false"/> with the reason in <paramref name="error"/> when <paramref name="text"/> is not one.</returns>
    public static bool TryCanonical(BanKind kind, string? text, [NotNullWhen(true)] out string? target, [NotNullWhen(false)] out string? error)
    {
        target = null;
        error = null;
        if (string.IsNullOrEmpty(text))
        {
            error = "is empty.";
            return false;
        }

        switch (kind)
        {
            case BanKind.Ip:
                if (!IPAddress.TryParse(text, out var address) || text.Contains('/', StringComparison.Ordinal))
                {
                    error = $"'{Logging.LogValues.Escape(text)}' is not an IP address.";
                    return false;
                }

                target = Canonical(address).ToString();
                return true;
            case BanKind.Network:
                var slash = text.IndexOf('/', StringComparison.Ordinal);
                if (slash < 0 || !IPAddress.TryParse(text.AsSpan(0, slash), out var network)
                    || !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var length))
                {
                    error = $"'{Logging.LogValues.Escape(text)}' is not a network such as 203.0.113.0/24 or 2001:db8::/32.";
                    return false;
                }

                network = Canonical(network);
                var bits = network.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
                if (length > bits)
                {
                    error = $"'{Logging.LogValues.Escape(text)}' has a prefix longer than {bits} bits.";
                    return false;
                }

                target = new IPNetwork(Mask(network, length), length).ToString();
                return true;
            default:
                if (text.Length > MaxSubjectLength)
                {
                    error = $"is {text.Length} characters; at most {MaxSubjectLength}.";
                    return false;
                }

                target = text;
                return true;
        }
    }

    /// <summary>The address as bans compare it: an IPv4-mapped IPv6 address as the IPv4 address, without a scope.</summary>
    internal static IPAddress Canonical(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4()
        : address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0 ? new IPAddress(address.GetAddressBytes())
        : address;

    private static IPAddress Mask(IPAddress address, int length)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(length - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF00 >> keep);
        }

        return new IPAddress(bytes);
    }
}
