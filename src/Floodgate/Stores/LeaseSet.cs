namespace Floodgate.Stores;

/// <summary>The leases of one concurrency key: parallel arrays, grown as needed, compacted as leases end.</summary>
internal sealed class LeaseSet
{
    private long[] _ids = new long[4];
    private long[] _expiries = new long[4];
    private long[] _permits = new long[4];
    private int _count;

    public long InFlight { get; private set; }

    public long EarliestExpiry { get; private set; }

    public long LatestExpiry { get; private set; }

    public void Clear()
    {
        _count = 0;
        Summarize();
    }

    public void Purge(long now)
    {
        var removed = false;
        for (var i = _count - 1; i >= 0; i--)
        {
            if (_expiries[i] <= now)
            {
                RemoveAt(i);
                removed = true;
            }
        }

        if (removed)
        {
            Summarize();
        }
    }

    public void Add(long id, long expiry, long permits)
    {
        if (_count == _ids.Length)
        {
            Array.Resize(ref _ids, _count * 2);
            Array.Resize(ref _expiries, _count * 2);
            Array.Resize(ref _permits, _count * 2);
        }

        (_ids[_count], _expiries[_count], _permits[_count]) = (id, expiry, permits);
        _count++;
        Summarize();
    }

    public bool Remove(long id)
    {
        for (var i = 0; i < _count; i++)
        {
            if (_ids[i] == id)
            {
                RemoveAt(i);
                Summarize();
                return true;
            }
        }

        return false;
    }

    private void RemoveAt(int i)
    {
        _count--;
        (_ids[i], _expiries[i], _permits[i]) = (_ids[_count], _expiries[_count], _permits[_count]);
    }

    private void Summarize()
    {
        long inFlight = 0, earliest = 0, latest = 0;
        for (var i = 0; i < _count; i++)
        {
            inFlight += _permits[i];
            earliest = earliest == 0 ? _expiries[i] : Math.Min(earliest, _expiries[i]);
            latest = Math.Max(latest, _expiries[i]);
        }

        (InFlight, EarliestExpiry, LatestExpiry) = (inFlight, earliest, latest);
    }
}
