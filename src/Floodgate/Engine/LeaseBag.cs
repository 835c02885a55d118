using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>The concurrency leases one request holds. Allocated only when a request takes a lease.</summary>
internal sealed class LeaseBag
{
    private readonly List<(RateLimitCheck Check, long LeaseId)> _leases = new(2);

    public int Count => _leases.Count;

    public (RateLimitCheck Check, long LeaseId) this[int index] => _leases[index];

    public static LeaseBag? Merge(LeaseBag? first, LeaseBag? second)
    {
        if (first is null || second is null)
        {
            return first ?? second;
        }

        first._leases.AddRange(second._leases);
        return first;
    }

    public void Add(RateLimitCheck check, long leaseId) => _leases.Add((check, leaseId));
}
