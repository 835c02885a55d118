namespace Floodgate.Gateway.Dashboard;

/// <summary>
/// The Space-Saving heavy-hitters sketch (Metwally, Agrawal and El Abbadi, 2005): at most <see cref="Capacity"/> keys,
/// whatever the number of distinct keys seen. A key seen more than total / capacity times is always held; a held key's
/// count overstates its true count by at most its <see cref="HeavyHitter.Error"/>. Thread-safe.
/// </summary>
internal sealed class HeavyHitters
{
    private readonly Dictionary<string, int> _slots;
    private readonly string[] _keys;
    private readonly long[] _counts;
    private readonly long[] _errors;
    private readonly Lock _lock = new();
    private int _used;
    private long _total;

    public HeavyHitters(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _slots = new Dictionary<string, int>(capacity, StringComparer.Ordinal);
        _keys = new string[capacity];
        _counts = new long[capacity];
        _errors = new long[capacity];
    }

    /// <summary>The most keys held at once.</summary>
    public int Capacity { get; }

    /// <summary>How many keys are held now (never more than <see cref="Capacity"/>).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _used;
            }
        }
    }

    /// <summary>Every occurrence offered, held or not.</summary>
    public long Total
    {
        get
        {
            lock (_lock)
            {
                return _total;
            }
        }
    }

    /// <summary>Counts one occurrence of <paramref name="key"/>.</summary>
    public void Add(string key)
    {
        lock (_lock)
        {
            _total++;
            if (_slots.TryGetValue(key, out var slot))
            {
                _counts[slot]++;
                return;
            }

            if (_used < Capacity)
            {
                slot = _used++;
                _errors[slot] = 0;
                _counts[slot] = 1;
            }
            else
            {
                // The newcomer takes the least counted key's slot and inherits its count as its possible overstatement.
                slot = 0;
                for (var i = 1; i < Capacity; i++)
                {
                    if (_counts[i] < _counts[slot])
                    {
                        slot = i;
                    }
                }

                _slots.Remove(_keys[slot]);
                _errors[slot] = _counts[slot];
                _counts[slot]++;
            }

            _keys[slot] = key;
            _slots[key] = slot;
        }
    }

    /// <summary>The <paramref name="top"/> most counted keys, most counted first.</summary>
    public HeavyHitter[] Top(int top)
    {
        lock (_lock)
        {
            var all = new HeavyHitter[_used];
            for (var i = 0; i < _used; i++)
            {
                all[i] = new HeavyHitter(_keys[i], _counts[i], _errors[i]);
            }

            Array.Sort(all, static (a, b) => b.Count != a.Count ? b.Count.CompareTo(a.Count) : string.CompareOrdinal(a.Key, b.Key));
            return all.Length <= top ? all : all[..top];
        }
    }
}

/// <summary>A key the sketch holds.</summary>
/// <param name="Key">The key.</param>
/// <param name="Count">Its count: at least its true count, at most <paramref name="Error"/> more.</param>
/// <param name="Error">How much <paramref name="Count"/> may overstate the true count.</param>
internal readonly record struct HeavyHitter(string Key, long Count, long Error);
