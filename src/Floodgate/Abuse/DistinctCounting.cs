using Floodgate.Rules;

namespace Floodgate.Abuse;

/// <summary>What a distinct rule does when a key has seen more distinct values than its limit in a window.</summary>
public enum DistinctAction
{
    /// <summary>Refuses the request (<see cref="DistinctCounting.RejectStatus"/>) while the key stays over, until the window ends.</summary>
    Reject = 0,

    /// <summary>Bans the key (a subject, or a client IP) for <see cref="DistinctCounting.BanDuration"/> through the ban store, so every replica agrees.</summary>
    Ban,

    /// <summary>Lets the request through and only reports it: a log line, a metric and a threshold event at 100 %.</summary>
    Flag,
}

/// <summary>
/// Makes a rule count distinct values of one key part per key, within windows of the rule's period: distinct client IPs
/// (or /24 and /64 networks) per subject, the stolen-key pattern; distinct subjects per client IP, credential stuffing.
/// The rule's limit is the most distinct values a key may show in a window (<c>20/hour</c>: 20 distinct values an hour).
/// </summary>
/// <remarks>
/// Windows are fixed and aligned as <c>fixed_window</c>'s are (to the Unix epoch, in multiples of the period), so a burst
/// across a boundary can show up to twice the limit before it is caught. Counts are exact up to
/// <see cref="DistinctSketch.ExactCapacity"/> values and HyperLogLog estimates above (docs/edge.md).
/// </remarks>
public sealed class DistinctCounting
{
    private readonly KeyPart _of = KeyPart.ClientIp;
    private readonly int _ipv4Prefix = 32;
    private readonly int _ipv6Prefix = 128;
    private readonly int _rejectStatus = 429;

    /// <summary>What is counted: <c>client_ip</c> (by <see cref="Ipv4Prefix"/> and <see cref="Ipv6Prefix"/>), <c>subject</c>, a header or a claim. Default: the client IP.</summary>
    /// <exception cref="ArgumentException">Another kind of part: a route, a method, a constant...</exception>
    public KeyPart Of
    {
        get => _of;
        init
        {
            if (!value.IsIdentity)
            {
                throw new ArgumentException($"A distinct rule counts who calls (client_ip, subject, claim:<name>, header:<name>), not '{value}'.", nameof(value));
            }

            _of = value;
        }
    }

    /// <summary>The leading bits of an IPv4 client address that count as one value: 32 (the address) by default, 24 for a /24.</summary>
    public int Ipv4Prefix
    {
        get => _ipv4Prefix;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 8);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 32);
            _ipv4Prefix = value;
        }
    }

    /// <summary>The leading bits of an IPv6 client address that count as one value: 128 (the address) by default, 64 for a /64.</summary>
    public int Ipv6Prefix
    {
        get => _ipv6Prefix;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 8);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 128);
            _ipv6Prefix = value;
        }
    }

    /// <summary>What is done when a key goes over. Default: reject.</summary>
    public DistinctAction Action { get; init; }

    /// <summary>The status a rejection answers: 429 (the default) or 403.</summary>
    public int RejectStatus
    {
        get => _rejectStatus;
        init
        {
            if (value is not (429 or 403))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "A distinct rule rejects with 429 or 403.");
            }

            _rejectStatus = value;
        }
    }

    /// <summary>How long a ban lasts, for <see cref="DistinctAction.Ban"/>.</summary>
    public TimeSpan BanDuration { get; init; } = TimeSpan.FromHours(1);
}
