using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>
/// The concurrency leases one request holds. Allocated only when a request takes a lease. While the request runs it may
/// sit in its engine's <see cref="LeaseRenewer"/>, whose list it is a node of (so keeping it there allocates nothing).
/// </summary>
internal sealed class LeaseBag
{
    private readonly List<(RateLimitCheck Check, long LeaseId, string? Rule)> _leases = new(2);

    // The leases no longer renewed (lost, or their store cannot renew), by index; made on the first.
    private bool[]? _stopped;

    public int Count => _leases.Count;

    public (RateLimitCheck Check, long LeaseId) this[int index] => (_leases[index].Check, _leases[index].LeaseId);

    // The renewer's state, read and written under its lock only.

    /// <summary>The previous and next bag in the renewer's list.</summary>
    internal LeaseBag? Previous { get; set; }

    /// <inheritdoc cref="Previous"/>
    internal LeaseBag? Next { get; set; }

    /// <summary>Whether the bag is in the renewer's list.</summary>
    internal bool Listed { get; set; }

    /// <summary>Whether the leases were released: the bag is never listed again.</summary>
    internal bool Released { get; set; }

    /// <summary>How many of the leases are renewed: those the bag held when it was listed.</summary>
    internal int Renewing { get; set; }

    /// <summary>When the leases are next renewed, and how often, in ticks of the renewer's monotonic clock.</summary>
    internal long DueAt { get; set; }

    /// <inheritdoc cref="DueAt"/>
    internal long Interval { get; set; }

    /// <summary>How many of the renewed leases are still renewed.</summary>
    internal int Active { get; set; }

    public static LeaseBag? Merge(LeaseBag? first, LeaseBag? second)
    {
        if (first is null || second is null)
        {
            return first ?? second;
        }

        first._leases.AddRange(second._leases);
        return first;
    }

    /// <summary>
    /// The first <paramref name="count"/> leases of <paramref name="bag"/> and the rest, each in a bag of its own
    /// (<see langword="null"/> when empty). For a bag not listed for renewal.
    /// </summary>
    public static (LeaseBag? Head, LeaseBag? Tail) Split(LeaseBag? bag, int count)
    {
        if (bag is null || count >= bag.Count)
        {
            return (bag, null);
        }

        if (count == 0)
        {
            return (null, bag);
        }

        var tail = new LeaseBag();
        tail._leases.AddRange(bag._leases.Skip(count));
        bag._leases.RemoveRange(count, bag._leases.Count - count);
        return (bag, tail);
    }

    public void Add(RateLimitCheck check, long leaseId, string? rule) => _leases.Add((check, leaseId, rule));

    /// <summary>The shortest lease timeout among the leases.</summary>
    public TimeSpan ShortestTimeout()
    {
        var shortest = TimeSpan.MaxValue;
        foreach (var lease in _leases)
        {
            shortest = lease.Check.Limit.LeaseTimeout < shortest ? lease.Check.Limit.LeaseTimeout : shortest;
        }

        return shortest;
    }

    /// <summary>The rule that took the lease at <paramref name="index"/>; <see langword="null"/> for a pre-check's.</summary>
    public string? RuleOf(int index) => _leases[index].Rule;

    /// <summary>Whether the lease at <paramref name="index"/> is still renewed.</summary>
    internal bool IsRenewed(int index) => _stopped is null || index >= _stopped.Length || !_stopped[index];

    /// <summary>Stops renewing the lease at <paramref name="index"/>; <see langword="false"/> when it was already stopped.</summary>
    internal bool Stop(int index)
    {
        if (!IsRenewed(index))
        {
            return false;
        }

        if (_stopped is null || index >= _stopped.Length)
        {
            Array.Resize(ref _stopped, _leases.Count);
        }

        _stopped[index] = true;
        Active--;
        return true;
    }
}
