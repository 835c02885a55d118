using Floodgate.Rules;
using Floodgate.Stores;

namespace Floodgate.Engine;

/// <summary>The cost reservations one request holds, to settle when it ends. Allocated only for a request that reserves.</summary>
/// <remarks>
/// The first reservation is held inline and a list is made only for a second: most requests reserve by one rule, and a
/// list of checks would cost them two more objects (about 250 bytes) each.
/// </remarks>
internal sealed class CostBag
{
    private (RateLimitCheck Check, RateLimitRule Rule) _first;
    private List<(RateLimitCheck Check, RateLimitRule Rule)>? _more;

    // Set by the first settlement: a request is settled once, however many ways it ends.
    private int _settled;

    public int Count { get; private set; }

    public (RateLimitCheck Check, RateLimitRule Rule) this[int index] => index == 0 ? _first : _more![index - 1];

    public static CostBag? Merge(CostBag? first, CostBag? second)
    {
        if (first is null || second is null || ReferenceEquals(first, second))
        {
            return first ?? second;
        }

        for (var i = 0; i < second.Count; i++)
        {
            var (check, rule) = second[i];
            first.Add(check, rule);
        }

        return first;
    }

    /// <summary>The first <paramref name="count"/> reservations of <paramref name="bag"/> and the rest, each in a bag of its own (<see langword="null"/> when empty).</summary>
    public static (CostBag? Head, CostBag? Tail) Split(CostBag? bag, int count)
    {
        if (bag is null || count >= bag.Count)
        {
            return (bag, null);
        }

        if (count == 0)
        {
            return (null, bag);
        }

        var head = new CostBag();
        var tail = new CostBag();
        for (var i = 0; i < bag.Count; i++)
        {
            var (check, rule) = bag[i];
            (i < count ? head : tail).Add(check, rule);
        }

        return (head, tail);
    }

    public void Add(RateLimitCheck check, RateLimitRule rule)
    {
        if (Count == 0)
        {
            _first = (check, rule);
        }
        else
        {
            (_more ??= new(2)).Add((check, rule));
        }

        Count++;
    }

    /// <summary>Marks the bag settled; <see langword="false"/> when it already was.</summary>
    public bool TrySettle() => Interlocked.Exchange(ref _settled, 1) == 0;
}
