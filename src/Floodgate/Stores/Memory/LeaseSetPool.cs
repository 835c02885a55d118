namespace Floodgate.Stores.Memory;

/// <summary>
/// The lease sets of a shard's concurrency keys, named by index so an <see cref="Entry"/> stays a plain struct (0 is no
/// set). A set given back is cleared and lent to the next concurrency key, keeping its arrays. Not thread-safe: the
/// shard's lock guards it.
/// </summary>
internal sealed class LeaseSetPool
{
    private readonly List<LeaseSet?> _sets = [null];
    private readonly Stack<int> _free = new();

    /// <summary>The set at <paramref name="index"/>, which is not 0.</summary>
    public LeaseSet this[int index] => _sets[index]!;

    /// <summary>Lends a set, empty; returns its index.</summary>
    public int Rent()
    {
        if (_free.TryPop(out var index))
        {
            return index;
        }

        _sets.Add(new LeaseSet());
        return _sets.Count - 1;
    }

    /// <summary>Takes back the set at <paramref name="index"/>, forgetting its leases.</summary>
    public void Return(int index)
    {
        _free.Push(index);
        _sets[index]!.Clear();
    }
}
