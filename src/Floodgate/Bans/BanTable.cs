using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace Floodgate.Bans;

/// <summary>
/// Bans in local memory, looked up without a lock or an allocation: an IP address is a network of 32 or 128 bits, so
/// every ban but a subject's is keyed by (family, prefix length, masked bits), and a lookup probes once per prefix
/// length in use (one probe when only single addresses are banned).
/// </summary>
public sealed class BanTable
{
    private readonly ConcurrentDictionary<NetworkKey, Ban> _networks = new();
    private readonly ConcurrentDictionary<string, Ban> _subjects = new(StringComparer.Ordinal);
    private readonly Lock _lengthsLock = new();
    private readonly int[] _lengthCounts = new int[33 + 129];
    private int[] _v4Lengths = [];
    private int[] _v6Lengths = [];

    /// <summary>How many bans are held, lapsed ones not yet pruned included.</summary>
    public int Count => _networks.Count + _subjects.Count;

    /// <summary>The ban in force on <paramref name="address"/> at <paramref name="now"/>; a lapsed one met is pruned.</summary>
    public bool TryFind(IPAddress address, DateTimeOffset now, [NotNullWhen(true)] out Ban? ban)
    {
        ArgumentNullException.ThrowIfNull(address);
        ban = null;
        if (_networks.IsEmpty)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        var v6 = written == 16 && !address.IsIPv4MappedToIPv6;
        var bits = v6 ? ReadBits(bytes) : ReadBits(written == 16 ? bytes[12..16] : bytes[..4]);
        var lengths = v6 ? Volatile.Read(ref _v6Lengths) : Volatile.Read(ref _v4Lengths);
        var width = v6 ? 128 : 32;
        foreach (var length in lengths)
        {
            var key = new NetworkKey(v6, length, Masked(bits, length, width));
            if (_networks.TryGetValue(key, out var found))
            {
                if (!found.IsExpired(now))
                {
                    ban = found;
                    return true;
                }

                Remove(found);
            }
        }

        return false;
    }

    /// <summary>The ban in force on <paramref name="subject"/> at <paramref name="now"/>; a lapsed one met is pruned.</summary>
    public bool TryFindSubject(string subject, DateTimeOffset now, [NotNullWhen(true)] out Ban? ban)
    {
        ArgumentNullException.ThrowIfNull(subject);
        if (!_subjects.IsEmpty && _subjects.TryGetValue(subject, out ban))
        {
            if (!ban.IsExpired(now))
            {
                return true;
            }

            Remove(ban);
        }

        ban = null;
        return false;
    }

    /// <summary>Holds <paramref name="ban"/> in place of any on its target.</summary>
    public void Set(Ban ban)
    {
        ArgumentNullException.ThrowIfNull(ban);
        if (ban.Kind == BanKind.Subject)
        {
            _subjects[ban.Target] = ban;
            return;
        }

        var key = KeyOf(ban);
        lock (_lengthsLock)
        {
            if (_networks.TryAdd(key, ban))
            {
                Track(key, +1);
            }
            else
            {
                _networks[key] = ban;
            }
        }
    }

    /// <summary>The ban held on a target, lapsed or not; <see langword="null"/> when none.</summary>
    public Ban? Get(BanKind kind, string target)
    {
        if (kind == BanKind.Subject)
        {
            return _subjects.TryGetValue(target, out var subject) ? subject : null;
        }

        return _networks.TryGetValue(KeyOf(new Ban(kind, target, string.Empty, default, default)), out var network) ? network : null;
    }

    /// <summary>Removes <paramref name="ban"/> if it is still the one held on its target.</summary>
    public bool Remove(Ban ban)
    {
        ArgumentNullException.ThrowIfNull(ban);
        if (ban.Kind == BanKind.Subject)
        {
            return _subjects.TryRemove(new KeyValuePair<string, Ban>(ban.Target, ban));
        }

        var key = KeyOf(ban);
        lock (_lengthsLock)
        {
            if (!_networks.TryRemove(new KeyValuePair<NetworkKey, Ban>(key, ban)))
            {
                return false;
            }

            Track(key, -1);
            return true;
        }
    }

    /// <summary>Every ban held, lapsed ones pruned.</summary>
    public List<Ban> Current(DateTimeOffset now)
    {
        var current = new List<Ban>(Count);
        foreach (var ban in _networks.Values.Concat(_subjects.Values))
        {
            if (ban.IsExpired(now))
            {
                Remove(ban);
            }
            else
            {
                current.Add(ban);
            }
        }

        return current;
    }

    /// <summary>Holds exactly <paramref name="bans"/>: what a replica's mirror does when it reloads the stored set.</summary>
    public void Replace(IReadOnlyCollection<Ban> bans)
    {
        ArgumentNullException.ThrowIfNull(bans);
        var ids = new HashSet<string>(bans.Select(b => b.Id), StringComparer.Ordinal);
        foreach (var held in _networks.Values.Concat(_subjects.Values))
        {
            if (!ids.Contains(held.Id))
            {
                Remove(held);
            }
        }

        foreach (var ban in bans)
        {
            Set(ban);
        }
    }

    private void Track(NetworkKey key, int delta)
    {
        var index = key.IsV6 ? 33 + key.Length : key.Length;
        var before = _lengthCounts[index];
        _lengthCounts[index] += delta;
        if ((before == 0) != (_lengthCounts[index] == 0))
        {
            // A prefix length came into use or went out of it: longest first, so the most specific ban answers.
            var lengths = Enumerable.Range(0, key.IsV6 ? 129 : 33).Where(l => _lengthCounts[(key.IsV6 ? 33 : 0) + l] > 0).Reverse().ToArray();
            Volatile.Write(ref key.IsV6 ? ref _v6Lengths : ref _v4Lengths, lengths);
        }
    }

    private static NetworkKey KeyOf(Ban ban)
    {
        IPAddress address;
        int length;
        if (ban.Kind == BanKind.Ip)
        {
            address = IPAddress.Parse(ban.Target);
            length = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        }
        else
        {
            var network = IPNetwork.Parse(ban.Target);
            (address, length) = (network.BaseAddress, network.PrefixLength);
        }

        var bytes = address.GetAddressBytes();
        var v6 = bytes.Length == 16;
        return new NetworkKey(v6, length, Masked(ReadBits(bytes), length, v6 ? 128 : 32));
    }

    private static UInt128 ReadBits(ReadOnlySpan<byte> bytes)
    {
        UInt128 bits = 0;
        foreach (var b in bytes)
        {
            bits = (bits << 8) | b;
        }

        return bits;
    }

    private static UInt128 Masked(UInt128 bits, int length, int width) =>
        length == 0 ? 0 : bits & (UInt128.MaxValue << (width - length));

    private readonly record struct NetworkKey(bool IsV6, int Length, UInt128 Bits);
}
