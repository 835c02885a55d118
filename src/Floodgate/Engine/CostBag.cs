using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>The cost reservations one request holds, to settle when it ends. Allocated only for a request that reserves.</summary>
internal sealed class CostBag
{
    private readonly List<(RateLimitCheck Check, RateLimitRule Rule)> _reservations = new(2);

    // Set by the first settlement: a request is settled once, however many ways it ends.
    private int _settled;

    public int Count => _reservations.Count;

    public (RateLimitCheck Check, RateLimitRule Rule) this[int index] => _reservations[index];

    public static CostBag? Merge(CostBag? first, CostBag? second)
    {
        if (first is null || second is null || ReferenceEquals(first, second))
        {
            return first ?? second;
        }

        first._reservations.AddRange(second._reservations);
        return first;
    }

    public void Add(RateLimitCheck check, RateLimitRule rule) => _reservations.Add((check, rule));

    /// <summary>Marks the bag settled; <see langword="false"/> when it already was.</summary>
    public bool TrySettle() => Interlocked.Exchange(ref _settled, 1) == 0;
}
